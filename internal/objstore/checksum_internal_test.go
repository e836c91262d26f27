package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/flamestream/flamestream/internal/testenv"
)

// Put leaves the payload unsigned and sends its SHA-256 in a signed header instead: that is as safe only
// if the server checks the body against the header. The real S3 server refuses a body whose checksum
// header does not match (and stores nothing), and takes Put's.
func TestPutChecksumIsCheckedByTheServer(t *testing.T) {
	cfg := testenv.Servers(t)
	s, err := Open(Options{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Region: cfg.S3Region, Secure: cfg.S3Secure})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	dir := fmt.Sprintf("objstore-checksum-%d/", time.Now().UnixNano())
	body := bytes.Repeat([]byte("flamestream;main;loop 7\n"), 5000) // over one aws-chunked chunk (64 KiB)
	if err := s.Put(ctx, dir+"good", body, "application/octet-stream"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, dir+"good")
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Get after Put: %d bytes, err %v; want the %d bytes put", len(got), err, len(body))
	}

	other := sha256.Sum256(append(bytes.Clone(body[:len(body)-1]), 'X'))
	_, err = s.client.PutObject(ctx, s.bucket, dir+"bad", bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{DisableMultipart: true, DisableContentSha256: true,
			UserMetadata: map[string]string{checksumHeader: base64.StdEncoding.EncodeToString(other[:])}})
	if err == nil {
		t.Fatal("the server stored a body whose checksum header does not match it")
	}
	if _, err := s.Get(ctx, dir+"bad"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the refused PUT, Get: %v, want ErrNotFound", err)
	}
	t.Logf("refused: %v", err)
}
