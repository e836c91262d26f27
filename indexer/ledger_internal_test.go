package indexer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flamestream/flamestream/internal/testenv"
)

// A batch is one day of the server's clock: one part in every table, each partitioned by day or month.
func TestDayStartFollowsTheServerZone(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip(err)
	}
	ts := time.Date(2026, 3, 8, 4, 30, 0, 0, time.UTC) // 23:30 on the 7th in New York
	if got, want := dayStart(ts, ny), time.Date(2026, 3, 7, 0, 0, 0, 0, ny); !got.Equal(want) {
		t.Errorf("dayStart in New York = %s, want %s", got, want)
	}
	if got, want := dayStart(ts, time.UTC), time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("dayStart in UTC = %s, want %s", got, want)
	}
	// The day after a change to summer time has 23 hours.
	if d := dayStart(ts, ny).AddDate(0, 0, 2).Sub(dayStart(ts, ny).AddDate(0, 0, 1)); d != 23*time.Hour {
		t.Errorf("8 March 2026 in New York lasts %s", d)
	}
}

// A repair claim is exclusive until its holder lets it go; then the next indexer may take it.
func TestRepairClaimIsExclusiveUntilReleased(t *testing.T) {
	_, _, js := testenv.JetStream(t)
	ctx := context.Background()
	a, b := &Indexer{js: js}, &Indexer{js: js}
	release, err := a.claimRepair(ctx, 42, "samples_1h")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.claimRepair(ctx, 42, "samples_1h"); !errors.Is(err, errRepairClaimed) {
		t.Fatalf("second claim of the same batch and table: %v, want errRepairClaimed", err)
	}
	other, err := b.claimRepair(ctx, 42, "totals_1m")
	if err != nil {
		t.Fatalf("a claim of another table: %v", err)
	}
	other()
	release()
	again, err := b.claimRepair(ctx, 42, "samples_1h")
	if err != nil {
		t.Fatalf("claim after the release: %v", err)
	}
	again()
}
