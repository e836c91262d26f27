package soak

import (
	"math"
	"testing"
)

func TestParseBucketLine(t *testing.T) {
	b, ok := parseBucketLine(`flamestream_ingest_store_seconds_bucket{le="0.004"} 17`)
	if !ok || b.name != "flamestream_ingest_store_seconds" || b.le != 0.004 || b.count != 17 {
		t.Fatalf("got %+v %v", b, ok)
	}
	if b, ok := parseBucketLine(`x_bucket{le="+Inf"} 3`); !ok || !math.IsInf(b.le, 1) || b.count != 3 {
		t.Fatalf("+Inf: got %+v %v", b, ok)
	}
	for _, line := range []string{
		`x_bucket{route="/a",le="1"} 3`, // another label: not this histogram's
		`x_count 3`,
		`x_bucket{le="1"}`,
		`x_bucket{le="one"} 3`,
		`# HELP x_bucket{le="1"} 3`,
	} {
		if b, ok := parseBucketLine(line); ok {
			t.Errorf("%q: parsed as %+v", line, b)
		}
	}
}

func TestHistogramQuantileSince(t *testing.T) {
	before := histogram{{0.001, 10}, {0.002, 10}, {0.004, 10}, {math.Inf(1), 10}}
	after := histogram{{0.001, 60}, {0.002, 90}, {0.004, 109}, {math.Inf(1), 110}}
	d := after.since(before)
	if d == nil {
		t.Fatal("since: nil")
	}
	// 100 observations: 50 ≤ 1 ms, 30 in (1, 2], 19 in (2, 4], 1 above 4 ms.
	for _, c := range []struct{ q, want float64 }{{0.5, 0.001}, {0.51, 0.002}, {0.8, 0.002}, {0.99, 0.004}, {1, math.Inf(1)}} {
		if got := d.quantile(c.q); got != c.want {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := (histogram{{1, 0}, {math.Inf(1), 0}}).quantile(0.5); !math.IsNaN(got) {
		t.Errorf("empty: %v, want NaN", got)
	}
	if after.since(histogram{{0.001, 1}}) != nil || before.since(after) != nil {
		t.Error("since of mismatched or later readings: want nil")
	}
}
