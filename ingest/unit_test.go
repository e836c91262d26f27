package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"net/http"
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
