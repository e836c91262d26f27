package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/objstore"
	"github.com/flamestream/flamestream/internal/testenv"
)

// List, GetRange and Delete on the real S3 server: listing stays in its folder and gives sizes, ranges
// read the bytes asked for (a suffix too), and deleting a key already gone is no error.
func TestListRangeDelete(t *testing.T) {
	cfg := testenv.Servers(t)
	s, err := objstore.Open(objstore.Options{Endpoint: cfg.S3Endpoint, AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey, Bucket: cfg.S3Bucket, Region: cfg.S3Region, Secure: cfg.S3Secure})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	dir := fmt.Sprintf("objstore-test-%d/", time.Now().UnixNano())
	body := []byte("0123456789abcdef")
	for _, k := range []string{dir + "a", dir + "b", dir + "sub/c"} {
		if err := s.Put(ctx, k, body[:len(k)%7+9], "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := s.List(ctx, dir, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Key != dir+"a" || objs[1].Key != dir+"b" || objs[0].Size != int64(len(dir+"a")%7+9) {
		t.Errorf("List: %+v, want a and b with their sizes", objs)
	}
	if got, err := s.GetRange(ctx, dir+"a", 2, 3); err != nil || !bytes.Equal(got, []byte("234")) {
		t.Errorf("GetRange 2+3: %q, %v", got, err)
	}
	n := len(dir+"a")%7 + 9
	if got, err := s.GetRange(ctx, dir+"a", 0, -4); err != nil || !bytes.Equal(got, body[n-4:n]) {
		t.Errorf("GetRange last 4: %q, %v; want %q", got, err, body[n-4:n])
	}
	if _, err := s.GetRange(ctx, dir+"nope", 0, 4); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("GetRange of a missing key: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, []string{dir + "a", dir + "never-there"}); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if err := s.Delete(ctx, []string{dir + "a"}); err != nil {
		t.Errorf("Delete again: %v", err)
	}
	if _, err := s.Get(ctx, dir+"a"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if _, err := s.DeletePrefix(ctx, dir, 10); err != nil {
		t.Error(err)
	}
}
