// Package assetver computes the content version of a web asset. The bundler
// writes it into index.html as the ?v= query of each asset URL and the HTTP
// handler uses it as the ETag and to decide when an asset may be cached
// forever, so both must agree; the package exists so the server does not
// link esbuild just to share this function.
package assetver

import (
	"crypto/sha256"
	"encoding/hex"
)

// Of returns a short, stable hex hash of content.
func Of(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:6])
}
