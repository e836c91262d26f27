// Package objstore keeps raw profiles in an S3 bucket (MinIO, versitygw or AWS) through minio-go.
package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrNotFound is returned by Get for a key that does not exist.
var ErrNotFound = errors.New("object not found")

// maxIdleConns bounds the idle connections kept to the S3 endpoint.
const maxIdleConns = 128

// Options says where the bucket is.
type Options struct {
	Endpoint, AccessKey, SecretKey, Bucket, Region string
	Secure                                         bool
}

// Store is one bucket.
type Store struct {
	client    *minio.Client
	core      minio.Core // the same client, for a GET that returns the object's size with its body
	transport *http.Transport
	bucket    string
}

// Open connects to the S3 endpoint. It does not touch the network; call EnsureBucket for that.
func Open(o Options) (*Store, error) {
	tr, err := minio.DefaultTransport(o.Secure)
	if err != nil {
		return nil, fmt.Errorf("s3 transport: %w", err)
	}
	// minio-go keeps 16 idle connections per host; ingest has up to its upload concurrency in flight and the
	// indexer its fetch parallelism, so above 16 each request dialed anew (a TCP handshake, and on the server
	// a new connection, per profile). The bound stays: idle connections beyond it are closed.
	tr.MaxIdleConnsPerHost = maxIdleConns
	tr.MaxIdleConns = maxIdleConns
	c, err := minio.New(o.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure: o.Secure, Region: o.Region, Transport: tr,
		// Put sends its own checksum header (see Put), which minio-go accepts only from a client that
		// knows checksums; with it, minio-go adds no checksum of its own to a request that has one.
		TrailingHeaders: true,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %s: %w", o.Endpoint, err)
	}
	return &Store{client: c, core: minio.Core{Client: c}, transport: tr, bucket: o.Bucket}, nil
}

// Close closes the idle connections to the endpoint (kept alive between requests); a request made after
// Close opens a new one.
func (s *Store) Close() {
	s.transport.CloseIdleConnections()
}

// EnsureBucket creates the bucket when it does not exist yet.
func (s *Store) EnsureBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", s.bucket, err)
	}
	if ok {
		return nil
	}
	if err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("make bucket %s: %w", s.bucket, err)
	}
	return nil
}

// checksumHeader carries a body's SHA-256 (base64) on a PUT; S3 servers refuse a body that does not
// match it.
const checksumHeader = "x-amz-checksum-sha256"

// Put stores body under key.
//
// The body's SHA-256 goes in the signed x-amz-checksum-sha256 header, which the server checks against
// what it receives (a mismatch is refused), and the payload itself is left unsigned. Over plain HTTP
// minio-go would otherwise sign the body in 64 KiB chunks (aws-chunked), each with its own HMAC that the
// server verifies too: the same integrity for more CPU on both ends (10 % of ingest's CPU on 2,000-line
// profiles; one hash of the whole body here instead).
func (s *Store) Put(ctx context.Context, key string, body []byte, contentType string) error {
	sum := sha256.Sum256(body)
	_, err := s.client.PutObject(ctx, s.bucket, key, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: contentType, DisableMultipart: true, DisableContentSha256: true,
			UserMetadata: map[string]string{checksumHeader: base64.StdEncoding.EncodeToString(sum[:])}})
	if err != nil {
		return fmt.Errorf("store object %s: %w", key, err)
	}
	return nil
}

// Get reads the whole object at key; a missing key gives ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	// Core's GetObject sends the GET at once and returns the response's size with its body, so the body
	// is read into one buffer of that size. The Object of Client.GetObject knows the size only through
	// Stat, which after a first read reports the bytes left and cuts the reads after it there (an object
	// of 8,193 bytes came back with 8,192): it was read into a buffer that doubled from 8 KiB, three
	// allocations and their copies for a 52 KB object (3 % of the indexer's CPU with 2,000-line profiles).
	body, info, _, err := s.core.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.StatusCode == http.StatusNotFound || er.Code == "NoSuchKey") {
			return nil, fmt.Errorf("get object %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("get object %s: %w", key, err)
	}
	defer body.Close()
	b, err := readSized(body, info.Size)
	if err != nil {
		return nil, fmt.Errorf("get object %s: %w", key, err)
	}
	return b, nil
}

// maxPrealloc bounds the buffer readSized allocates from the announced size alone: a bigger object grows
// its buffer as its bytes arrive.
const maxPrealloc = 64 << 20

// readSized reads r to its end into a buffer of the announced size (one more byte finds the end); a size
// that is unknown (-1) or wrong still reads every byte, into a buffer that grows.
func readSized(r io.Reader, size int64) ([]byte, error) {
	n := int64(8 << 10)
	if size >= 0 {
		n = min(size, maxPrealloc) + 1
	}
	b := make([]byte, 0, n)
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, cap(b))
		}
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// Ping checks that the bucket answers.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.client.BucketExists(ctx, s.bucket)
	return err
}

// Prefixes lists the "folders" right under prefix: the distinct keys cut after the next "/" past prefix, in
// key order, at most max of them.
func (s *Store) Prefixes(ctx context.Context, prefix string, max int) ([]string, error) {
	return listLevel(ctx, s, prefix, max, func(o minio.ObjectInfo) (string, bool) {
		return o.Key, strings.HasSuffix(o.Key, "/")
	})
}

// listLevel lists one level under prefix (no recursion: deeper keys come as folders ending in "/"), in key
// order, keeping what pick keeps, at most max of them.
func listLevel[T any](ctx context.Context, s *Store, prefix string, max int, pick func(minio.ObjectInfo) (T, bool)) ([]T, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listing goroutine when we stop early
	var out []T
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			return out, fmt.Errorf("list %s: %w", prefix, obj.Err)
		}
		if v, ok := pick(obj); ok {
			out = append(out, v)
			if len(out) >= max {
				break
			}
		}
	}
	return out, nil
}

// DeletePrefix deletes the objects under prefix, at most max of them, and returns how many it deleted.
func (s *Store) DeletePrefix(ctx context.Context, prefix string, max int) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keys := make(chan minio.ObjectInfo)
	var listErr error
	n := 0
	go func() {
		defer close(keys)
		for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				listErr = obj.Err
				return
			}
			if n >= max {
				return
			}
			select {
			case keys <- obj:
				n++
			case <-ctx.Done():
				return
			}
		}
	}()
	var firstErr error
	for e := range s.client.RemoveObjects(ctx, s.bucket, keys, minio.RemoveObjectsOptions{}) {
		if firstErr == nil {
			firstErr = fmt.Errorf("delete %s: %w", e.ObjectName, e.Err)
		}
	}
	if firstErr != nil {
		return n, firstErr
	}
	if listErr != nil {
		return n, fmt.Errorf("list %s: %w", prefix, listErr)
	}
	return n, nil
}

// Object is one listed object.
type Object struct {
	Key  string
	Size int64
	// Modified is when the object was stored.
	Modified time.Time
}

// List lists the objects right under prefix (not those in deeper "folders"), in key order, at most max.
func (s *Store) List(ctx context.Context, prefix string, max int) ([]Object, error) {
	return listLevel(ctx, s, prefix, max, func(o minio.ObjectInfo) (Object, bool) {
		return Object{Key: o.Key, Size: o.Size, Modified: o.LastModified}, !strings.HasSuffix(o.Key, "/")
	})
}

// GetRange reads n bytes of the object at key from offset off; n < 0 reads the last -n bytes (or the
// whole object when it is shorter). A missing key gives ErrNotFound.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	var opts minio.GetObjectOptions
	var err error
	switch {
	case n < 0:
		err = opts.SetRange(0, n)
	case n == 0:
		return nil, nil
	default:
		err = opts.SetRange(off, off+n-1)
	}
	if err != nil {
		return nil, fmt.Errorf("get object %s: %w", key, err)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		return nil, fmt.Errorf("get object %s: %w", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.StatusCode == http.StatusNotFound || er.Code == "NoSuchKey") {
			return nil, fmt.Errorf("get object %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("get object %s range %d+%d: %w", key, off, n, err)
	}
	if n > 0 && int64(len(b)) != n {
		return nil, fmt.Errorf("get object %s range %d+%d: read %d bytes", key, off, n, len(b))
	}
	return b, nil
}

// Delete deletes the objects at keys; a key already gone is not an error.
func (s *Store) Delete(ctx context.Context, keys []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan minio.ObjectInfo)
	go func() {
		defer close(ch)
		for _, k := range keys {
			select {
			case ch <- minio.ObjectInfo{Key: k}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var firstErr error
	for e := range s.client.RemoveObjects(ctx, s.bucket, ch, minio.RemoveObjectsOptions{}) {
		// S3 reports a key already gone as deleted; versitygw reports NoSuchKey (another deleter won).
		if er := minio.ToErrorResponse(e.Err); er.Code == "NoSuchKey" || er.StatusCode == http.StatusNotFound {
			continue
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("delete %s: %w", e.ObjectName, e.Err)
		}
	}
	return firstErr
}
