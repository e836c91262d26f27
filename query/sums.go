package query

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/proto"
)

// sums returns the segment sums of one or two selections (the comparison, then a diff's baseline). It goes
// in stages: each selection is split into segments (see Plan, and checkedReads for the built rollups);
// readCached takes from the cache the settled segments whose data has not changed; readFresh reads all the
// others from ClickHouse in one query and caches the settled ones; results hands them on, to be merged
// into a view of the service's trie (see view).
func (s *Server) sums(ctx context.Context, sels ...Selection) ([]segmentSums, error) {
	reads, err := s.checkedReads(ctx, sels)
	if err != nil {
		return nil, err
	}
	return results(reads), nil
}

// side is the side of an answer that counts go to.
type side int

const (
	comparison side = iota // the graph asked for, or the side a diff compares with its baseline
	baseline               // a diff's baseline
)

// segmentSums is the per-stack sums of one segment of a plan, to be added (sign 1) or subtracted (-1) on
// one side of an answer.
type segmentSums struct {
	side  side
	sign  int64
	sums  []stackSum
	entry *segEntry // the cache entry holding sums, nil when they are not cached
}

// segmentRead is one segment of a plan on its way to its sums, through the stages of sums.
type segmentRead struct {
	side  side
	seg   Segment
	table string
	from  string // segmentFrom, also the cache key
	// settled marks a segment that ends before Rollups.Settled, whose sums the cache may keep (the cache is
	// on and the tables' parts are visible), under version: the parts it reads (see version).
	settled bool
	version string
	sums    []stackSum
	entry   *segEntry // the cache entry of sums
	cached  bool      // sums came from the cache
}

// segmentReads returns the reads of the segments of one side's selection, planned on r.
func (s *Server) segmentReads(sd side, sel Selection, segs []Segment, r Rollups) []segmentRead {
	reads := make([]segmentRead, 0, len(segs))
	for _, seg := range segs {
		reads = append(reads, segmentRead{
			side:    sd,
			seg:     seg,
			table:   seg.Table(sel.HasFilters()),
			from:    s.segmentFrom(sel, seg),
			settled: s.cache != nil && s.cacheable && !seg.To.After(r.Settled),
		})
	}
	return reads
}

// readCached sets the version of the settled segments, from one listing of the parts under all of them, and
// takes from the cache the sums of those whose version it holds.
func (s *Server) readCached(ctx context.Context, reads []segmentRead) error {
	var tables []string
	var lo, hi time.Time
	for _, rd := range reads {
		if !rd.settled {
			continue
		}
		if !slices.Contains(tables, rd.table) {
			tables = append(tables, rd.table)
		}
		if lo.IsZero() || rd.seg.From.Before(lo) {
			lo = rd.seg.From
		}
		if rd.seg.To.After(hi) {
			hi = rd.seg.To
		}
	}
	if len(tables) == 0 {
		return nil
	}
	parts, err := s.parts(ctx, tables, lo, hi)
	if err != nil {
		return err
	}
	for i := range reads {
		rd := &reads[i]
		if rd.settled {
			rd.version = version(parts, rd.table, rd.seg.From, rd.seg.To)
			if rd.entry, rd.cached = s.cache.get(rd.from, rd.version); rd.cached {
				rd.sums = rd.entry.sums
			}
		}
	}
	return nil
}

// readFresh reads the sums of every segment the cache did not have in one ClickHouse query (see
// segmentsSQL: each row names its segment), and caches those of the settled ones.
func (s *Server) readFresh(ctx context.Context, reads []segmentRead) error {
	var missing []int
	var froms []string
	for i, rd := range reads {
		if !rd.cached {
			missing = append(missing, i)
			froms = append(froms, rd.from)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var seg proto.ColUInt32
	var hash proto.ColUInt64
	var count proto.ColInt64
	err := s.ch.DoLimited(ctx, s.limits(), ch.Query{
		Body:   s.segmentsSQL(froms),
		Result: proto.Results{{Name: "seg", Data: &seg}, {Name: "stack", Data: &hash}, {Name: "c", Data: &count}},
		OnResult: func(ctx context.Context, b proto.Block) error {
			for i, k := range seg {
				if int(k) >= len(missing) {
					return fmt.Errorf("segment %d of %d", k, len(missing))
				}
				rd := &reads[missing[k]]
				rd.sums = append(rd.sums, stackSum{hash[i], count[i]})
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("stack counts: %w", err)
	}
	for _, i := range missing {
		if rd := &reads[i]; rd.settled {
			rd.entry = s.cache.put(rd.from, rd.version, rd.sums)
		}
	}
	return nil
}

// results returns the sums of the segments read, with the side and sign each counts on.
func results(reads []segmentRead) []segmentSums {
	out := make([]segmentSums, len(reads))
	for i, rd := range reads {
		out[i] = segmentSums{side: rd.side, sign: int64(rd.seg.Sign), sums: rd.sums, entry: rd.entry}
	}
	return out
}
