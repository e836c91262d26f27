package soak

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// histogram is a Prometheus histogram without labels other than le: its cumulative buckets in order.
type histogram []histBucket

type histBucket struct {
	le    float64 // upper bound; +Inf for the last
	count float64 // observations at or below le
}

// histograms reads the named histograms (without their _bucket suffix) from a Prometheus text page;
// names it lacks are left out.
func histograms(ctx context.Context, url string, names ...string) (map[string]histogram, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %d", url, resp.StatusCode)
	}
	out := map[string]histogram{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		b, ok := parseBucketLine(sc.Text())
		if ok && slices.Contains(names, b.name) {
			out[b.name] = append(out[b.name], b.histBucket)
		}
	}
	for _, h := range out {
		slices.SortFunc(h, func(x, y histBucket) int { return compareFloat(x.le, y.le) })
	}
	return out, sc.Err()
}

type namedBucket struct {
	name string
	histBucket
}

// parseBucketLine reads `name_bucket{le="0.5"} 12`; ok is false for any other line (a bucket line with
// further labels included).
func parseBucketLine(line string) (namedBucket, bool) {
	head, value, ok := strings.Cut(line, " ")
	if !ok {
		return namedBucket{}, false
	}
	name, le, ok := strings.Cut(head, `_bucket{le="`)
	if !ok || !strings.HasSuffix(le, `"}`) {
		return namedBucket{}, false
	}
	bound, err := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64)
	if err != nil {
		return namedBucket{}, false
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	if err != nil {
		return namedBucket{}, false
	}
	return namedBucket{name: name, histBucket: histBucket{le: bound, count: n}}, true
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// since is what h observed after a, an earlier reading of the same histogram (nil when the buckets
// differ, e.g. the process restarted in between).
func (h histogram) since(a histogram) histogram {
	if len(a) != len(h) {
		return nil
	}
	out := make(histogram, len(h))
	for i := range h {
		if a[i].le != h[i].le || h[i].count < a[i].count {
			return nil
		}
		out[i] = histBucket{le: h[i].le, count: h[i].count - a[i].count}
	}
	return out
}

// quantile is the upper bound of the bucket that holds the q-quantile (0 < q <= 1): the true value is at
// most that. It is NaN without observations and +Inf when the quantile is above the last finite bound.
func (h histogram) quantile(q float64) float64 {
	if len(h) == 0 || h[len(h)-1].count == 0 {
		return math.NaN()
	}
	rank := q * h[len(h)-1].count
	for _, b := range h {
		if b.count >= rank {
			return b.le
		}
	}
	return math.Inf(1)
}
