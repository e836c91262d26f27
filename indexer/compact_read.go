package indexer

import (
	"context"

	"github.com/flamestream/flamestream/internal/archive"
)

// fetchObject reads a raw upload by its key. Once CompactArchive has bundled an hour its originals are
// gone: a store that can read bundles (objstore.Store) then finds the upload in its hour's bundle, so that
// a replay of old events and Reindex work on compacted hours as on fresh ones. An upload in neither gives
// objstore.ErrNotFound, as before.
func fetchObject(ctx context.Context, objects Objects, key string) ([]byte, error) {
	if s, ok := objects.(archive.Store); ok {
		return archive.Get(ctx, s, key)
	}
	return objects.Get(ctx, key)
}
