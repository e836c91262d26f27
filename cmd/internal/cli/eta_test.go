package cli

import (
	"math"
	"testing"
	"time"
)

func TestETA(t *testing.T) {
	for _, c := range []struct {
		remaining int64
		rate      float64
		want      string
	}{
		{0, 0, "0s"},
		{-3, 10, "0s"},
		{10, 0, "?"},
		{10, math.NaN(), "?"},
		{100, 10, "10s"},
		{1, 1000, "1s"}, // never 0s while work remains
		{3000, 10, "5m0s"},
		{36000 + 1234, 10, "1h2m0s"},
		{1 << 62, 1, "over a year"},
	} {
		if got := ETA(c.remaining, c.rate); got != c.want {
			t.Errorf("ETA(%d, %v) = %q, want %q", c.remaining, c.rate, got, c.want)
		}
	}
	if r := Rate(500, 2*time.Second); r != 250 {
		t.Errorf("Rate = %v, want 250", r)
	}
	if r := Rate(5, 0); r != 0 {
		t.Errorf("Rate over no time = %v, want 0", r)
	}
}
