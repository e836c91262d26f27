package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/flamestream/flamestream/internal/demo"
	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/profile"
	"github.com/flamestream/flamestream/stream"
)

func TestGunzipRefusesToInflatePastTheLimit(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(make([]byte, 1000))
	zw.Close()
	for _, c := range []struct {
		limit int64
		code  int
	}{{1000, 0}, {999, http.StatusRequestEntityTooLarge}} {
		_, err := gunzip(buf.Bytes(), c.limit)
		var e *apiError
		switch {
		case c.code == 0 && err != nil:
			t.Errorf("limit %d: %v", c.limit, err)
		case c.code != 0 && (!errors.As(err, &e) || e.status != c.code):
			t.Errorf("limit %d: %v, want %d", c.limit, err, c.code)
		}
	}
}

func TestSampleDrawIsUniformAndDeterministic(t *testing.T) {
	const n = 20000
	below := 0
	for i := range n {
		id := ProfileID("s", time.Unix(int64(i), 0), "h", []byte(fmt.Sprint(i)))
		d := sampleDraw(id)
		if d < 0 || d >= 1 || d != sampleDraw(id) {
			t.Fatalf("draw %v of %s", d, id)
		}
		if d < 0.3 {
			below++
		}
	}
	// 4 sd of a binomial(20000, 0.3) is about 260.
	if below < 6000-260 || below > 6000+260 {
		t.Errorf("%d of %d draws below 0.3", below, n)
	}
}

func TestSkipIndexingNeverDownsamplesTestServices(t *testing.T) {
	id := ProfileID("s", time.Unix(0, 0), "h", []byte("x"))
	for _, c := range []struct {
		svc  pgdb.Service
		skip bool
	}{
		{pgdb.Service{Name: "prod", SampleThreshold: 1}, true},
		{pgdb.Service{Name: "prod", SampleThreshold: 0}, false},
		{pgdb.Service{Name: "load-test", SampleThreshold: 1}, false},
	} {
		if got := skipIndexing(c.svc, id); got != c.skip {
			t.Errorf("%+v: skip %v, want %v", c.svc, got, c.skip)
		}
	}
}

// TestWriteOKIsWhatWriteJSONWrites: the hand-written reply of an accepted upload has the bytes the
// agent got before (encoding/json of the map).
func TestWriteOKIsWhatWriteJSONWrites(t *testing.T) {
	for _, gpid := range []int64{0, 1, 1234567890123} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		writeJSON(want, http.StatusOK, map[string]any{"message": "ok", "gpid": gpid})
		writeOK(got, gpid)
		if got.Code != want.Code || got.Body.String() != want.Body.String() || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
			t.Errorf("gpid %d: %d %q, want %d %q", gpid, got.Code, got.Body, want.Code, want.Body)
		}
	}
}

// TestParseTimeReadsEveryLayout: with a zone or without (UTC), T or space, with or without fraction;
// the layout tried first depends on the text, the result must not.
func TestParseTimeReadsEveryLayout(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC)
	for _, in := range []string{"2026-01-02T03:04:05.12", "2026-01-02 03:04:05.120000", "2026-01-02T03:04:05.12Z",
		"2026-01-02T04:04:05.12+01:00", "2026-01-01T22:04:05.12-05:00"} {
		got, err := parseTime(in)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	if got, err := parseTime("2026-01-02T03:04:05"); err != nil || !got.Equal(want.Truncate(time.Second)) {
		t.Errorf("no fraction: %v %v", got, err)
	}
	if _, err := parseTime("2026-01-02T03:04:05.12 nonsense"); err == nil {
		t.Error("trailing text accepted")
	}
}

// TestConcurrentUploadsKeepTheirOwnProfile: uploads served at the same time, each inflated and unescaped
// into pooled buffers, each get the id of their own profile text (a buffer shared by two requests would
// give one of them the other's id, or a text that fails its check).
func TestConcurrentUploadsKeepTheirOwnProfile(t *testing.T) {
	fleet := demo.NewFleet(2, "svc", demo.Shape{Stacks: 200, Lines: 40, MinDepth: 4, MaxDepth: 16})
	lf := demo.NewLoadFleet(2, fleet, 16, 8)
	start := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	const n = 400
	want := map[string]bool{}
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = lf.Body(i%16, i%8, start.Add(-time.Duration(i)*time.Minute), "")
		plain, err := gunzip(bodies[i], 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		p, err := parseUpload(plain, profile.FormatV2, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		want[ProfileID("svc", p.start, p.host, p.text)] = true
	}
	var mu sync.Mutex
	got := map[string]bool{}
	publish := func(_ context.Context, ev stream.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got[ev.ID] = true
		return nil
	}
	put := putFunc(func(context.Context, string, []byte, string) error { return nil })
	s := New(Config{AuthCacheTTL: time.Hour}, benchMeta{}, put, publish, slog.New(slog.DiscardHandler), nil)
	r := chi.NewRouter()
	s.Routes(r)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				req := httptest.NewRequest(http.MethodPost, "/api/v2/profiles", bytes.NewReader(bodies[i]))
				req.Header.Set(HeaderAPIKey, "k")
				req.Header.Set(HeaderServiceName, "svc")
				req.Header.Set("Content-Encoding", "gzip")
				rec := httptest.NewRecorder()
				r.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					t.Errorf("upload %d: %d %s", i, rec.Code, rec.Body)
				}
			}
		})
	}
	wg.Wait()
	if len(got) != len(want) {
		t.Errorf("%d distinct ids published, want %d", len(got), len(want))
	}
	for id := range got {
		if !want[id] {
			t.Errorf("id %s is no upload's", id)
		}
	}
}
