package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/pgdb"
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
