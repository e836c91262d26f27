package soak

import (
	"strings"
	"testing"
	"time"
)

func sentUpload(host string, start time.Time, count uint64, state int32, tries int32) *upload {
	u := &upload{host: host, start: start, count: count}
	u.state.Store(state)
	u.tries.Store(tries)
	return u
}

// TestCompareFindsLostDoubleWrongAndStrayProfiles checks the verdict on every kind of profile: an accepted
// one must be there exactly once, a rejected or unsent one never, an unanswered one may be.
func TestCompareFindsLostDoubleWrongAndStrayProfiles(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	sent := []*upload{
		sentUpload("a", at(1), 10, acked, 1),    // exact
		sentUpload("a", at(2), 20, acked, 3),    // missing
		sentUpload("b", at(1), 30, acked, 1),    // counted twice
		sentUpload("b", at(2), 40, acked, 1),    // wrong count
		sentUpload("c", at(1), 50, acked, 1),    // right sum under two profile ids
		sentUpload("c", at(2), 60, pending, 4),  // unanswered, indexed exactly: fine
		sentUpload("c", at(3), 70, pending, 4),  // unanswered, not indexed: fine
		sentUpload("d", at(1), 80, rejected, 1), // answered 4xx yet indexed: stray
		sentUpload("d", at(2), 90, pending, 0),  // never sent yet indexed: stray
	}
	rows := map[string]profileRows{
		profileKey("a", at(1).Unix()): {sum: 10, ids: 1},
		profileKey("b", at(1).Unix()): {sum: 60, ids: 1},
		profileKey("b", at(2).Unix()): {sum: 41, ids: 1},
		profileKey("c", at(1).Unix()): {sum: 50, ids: 2},
		profileKey("c", at(2).Unix()): {sum: 60, ids: 1},
		profileKey("d", at(1).Unix()): {sum: 80, ids: 1},
		profileKey("d", at(2).Unix()): {sum: 90, ids: 1},
		profileKey("e", at(9).Unix()): {sum: 5, ids: 1}, // no upload at all: stray
	}
	var tot Totals
	lo, hi := tot.compare(sent, rows)
	if tot.Missing != 1 || tot.Double != 1 || tot.Wrong != 2 || tot.Stray != 3 || tot.Profiles != 8 {
		t.Errorf("missing %d double %d wrong %d stray %d profiles %d; want 1 1 2 3 8\n%s",
			tot.Missing, tot.Double, tot.Wrong, tot.Stray, tot.Profiles, strings.Join(tot.Examples, "\n"))
	}
	// Expected holds what must be there: the accepted profiles found plus the unanswered one indexed.
	if want := uint64(10 + 30 + 40 + 50 + 60); tot.Expected != want {
		t.Errorf("expected %d, want %d", tot.Expected, want)
	}
	if !lo.Equal(at(1)) || !hi.Equal(at(2)) {
		t.Errorf("range %v–%v, want %v–%v", lo, hi, at(1), at(2))
	}
	if len(rows) != 8 {
		t.Errorf("compare changed the rows it was given: %d left", len(rows))
	}

	var clean Totals
	clean.compare(sent[:1], map[string]profileRows{profileKey("a", at(1).Unix()): {sum: 10, ids: 1}})
	if clean.Missing+clean.Double+clean.Wrong+clean.Stray != 0 || clean.Expected != 10 {
		t.Errorf("an exact profile was judged wrong: %+v", clean)
	}
}

// TestGrowthJudgesTheSecondHalfOfTheLastProcess checks that growing RSS or goroutines fail, flat ones pass,
// and samples of an earlier process (a killed indexer) or outside the window are left out.
func TestGrowthJudgesTheSecondHalfOfTheLastProcess(t *testing.T) {
	cfg := Config{}
	cfg.Defaults()
	series := func(pid int, rss, gor func(i int) float64) []Sample {
		var out []Sample
		for i := range 30 {
			out = append(out, Sample{T: float64(i * 10), Roles: map[string]RoleSample{
				"ingest": {PID: pid, RSSMiB: rss(i), Goroutines: gor(i)}}})
		}
		return out
	}
	cases := []struct {
		name     string
		samples  []Sample
		failures int
	}{
		{"flat", series(7, func(i int) float64 { return 100 + float64(i%3) }, func(i int) float64 { return 40 + float64(i%5) }), 0},
		{"rss leak", series(7, func(i int) float64 { return 100 + 10*float64(i) }, func(int) float64 { return 40 }), 1},
		{"goroutine leak", series(7, func(int) float64 { return 100 }, func(i int) float64 { return 40 + 10*float64(i) }), 1},
		{"both", series(7, func(i int) float64 { return 100 + 10*float64(i) }, func(i int) float64 { return 40 + 10*float64(i) }), 2},
		{"another process grew", series(6, func(i int) float64 { return 100 + 10*float64(i) }, func(int) float64 { return 40 }), 0},
	}
	for _, c := range cases {
		g := &Growth{}
		got := g.judge(c.samples, "ingest", 7, 150, 300, cfg)
		if len(got) != c.failures {
			t.Errorf("%s: %d failures %q, want %d", c.name, len(got), got, c.failures)
		}
		if c.name == "flat" && g.Samples != 15 {
			t.Errorf("flat: judged %d samples, want the 15 of [150 s, 300 s]", g.Samples)
		}
	}
}
