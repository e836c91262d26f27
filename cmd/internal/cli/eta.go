package cli

import (
	"math"
	"time"
)

// ETA is how long remaining items take at rate items a second, rounded for a progress line (to the
// second, to the minute past an hour); "?" when the rate is not known yet (nothing done) and the
// remaining work is not nothing.
func ETA(remaining int64, rate float64) string {
	if remaining <= 0 {
		return "0s"
	}
	if rate <= 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return "?"
	}
	secs := float64(remaining) / rate
	if secs > float64(365*24*time.Hour/time.Second) {
		return "over a year"
	}
	d := time.Duration(secs * float64(time.Second))
	if d >= time.Hour {
		return d.Round(time.Minute).String()
	}
	return max(d.Round(time.Second), time.Second).String()
}

// Rate is done items over took, a second; 0 before any time passed.
func Rate(done int64, took time.Duration) float64 {
	if took <= 0 {
		return 0
	}
	return float64(done) / took.Seconds()
}
