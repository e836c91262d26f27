package profile

// Check parses a profile of format f as ParseAs does, without keeping its
// lines, and also applies Aggregate's rule: no stack of one container may
// total more than MaxCount over the profile. Ingest runs it before accepting
// an upload, so that the indexer never meets a profile it cannot store
// exactly. The error is ParseAs's, or a *LineError naming the line whose
// count takes a stack's total past MaxCount.
//
// A profile whose counts sum to at most MaxCount cannot break the rule, so
// only such an unusual profile is parsed a second time, into an Aggregate.
func Check(text []byte, f Format) (Header, error) {
	var total uint64
	// The first pass needs only the counts, and that every line would parse: a line's frames are not
	// normalized when one of them is plainly there (isNormalized was ≈ 10 % of ingest's CPU on 2,000-line
	// profiles). Its total may include "swapper" lines that the aggregate skips: only ever more than the
	// aggregate's, so a profile near the limit goes to the exact second pass.
	h, err := parseAs(text, f, func(l *Line) error {
		// Each count is at most MaxCount: stopping at the first total above it
		// keeps the sum far from overflowing.
		if total <= MaxCount {
			total += l.Count
		}
		return nil
	}, true)
	if err != nil || total <= MaxCount {
		return h, err
	}
	var a Aggregate
	_, err = ParseAs(text, f, a.Add)
	return h, err
}
