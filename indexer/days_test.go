package indexer

import (
	"testing"
	"time"
)

func TestExpiredPartitions(t *testing.T) {
	cutoff := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		unit      partitionUnit
		partition string
		want      bool
	}{
		{byDay, "20260313", true},
		{byDay, "20260314", true},  // ends at the 15th 00:00, before the cutoff
		{byDay, "20260315", false}, // holds rows after the cutoff
		{byDay, "20260316", false},
		{byMonth, "202602", true},
		{byMonth, "202603", false},
	}
	for _, tt := range tests {
		got, err := expired(tt.unit, tt.partition, cutoff)
		if err != nil || got != tt.want {
			t.Errorf("expired(%v, %s) = %v, %v; want %v", tt.unit, tt.partition, got, err, tt.want)
		}
	}
	if _, err := expired(byDay, "tuple()", cutoff); err == nil {
		t.Error("a non-date partition was accepted")
	}
}

func TestAlignDaysWidensToWholeUTCDays(t *testing.T) {
	d := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	tests := []struct{ from, to, wantFrom, wantTo string }{
		{"2026-03-15T10:30:00Z", "2026-03-15T11:00:00Z", "2026-03-15T00:00:00Z", "2026-03-16T00:00:00Z"},
		{"2026-03-15T00:00:00Z", "2026-03-17T00:00:00Z", "2026-03-15T00:00:00Z", "2026-03-17T00:00:00Z"},
		{"2026-03-15T23:59:59+02:00", "2026-03-16T01:00:00+02:00", "2026-03-15T00:00:00Z", "2026-03-16T00:00:00Z"},
	}
	for _, tt := range tests {
		f, to := alignDays(d(tt.from), d(tt.to))
		if !f.Equal(d(tt.wantFrom)) || !to.Equal(d(tt.wantTo)) {
			t.Errorf("alignDays(%s, %s) = %s, %s; want %s, %s", tt.from, tt.to, f, to, tt.wantFrom, tt.wantTo)
		}
	}
}
