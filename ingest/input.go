package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flamestream/flamestream/internal/pgdb"
	"github.com/flamestream/flamestream/internal/profile"
)

// Input rules. Ingest refuses what it cannot store exactly with a 400 that names the field and says why,
// and never lets a store's refusal turn into a 5xx:
//
//   - Names that identify data (the service name from the header, the query or the body; the hostname from
//     the upload JSON, the profile's metadata header, a log batch or a heartbeat): valid UTF-8 without NUL
//     bytes (PostgreSQL's text refuses both), else 400. A service name is also at most maxServiceLen bytes
//     once path-escaped: it is a folder of the object key, and a file system's folder name holds 255.
//   - Other metadata text stored in PostgreSQL (agent version, instance type, cloud provider, container and
//     Kubernetes names, run arguments, agent log records, heartbeat status and ids): stored safely, each
//     NUL byte and each invalid UTF-8 sequence replaced by U+FFFD; JSON values likewise (a \u0000 escape
//     or a lone surrogate becomes U+FFFD).
//   - Frame text and the container field of stack lines go to ClickHouse String columns byte for byte.
//   - Sample counts: at most profile.MaxCount per line and per stack of one container over a profile.
//   - Times: start_time and end_time between minTime and maxAhead after the server's clock, end_time not
//     before start_time.

// maxServiceLen bounds a service name as escaped into the object key (see ObjectKey): the S3 servers
// Flamestream runs on (MinIO, versitygw) keep each "/"-separated part of a key as a file or folder name,
// which holds 255 bytes; a longer one would fail every store with a 503 the agent retries forever.
const maxServiceLen = 255

// minTime is the earliest start or end time accepted: no agent clock is plausibly earlier.
var minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// maxAhead is how far past the server's clock a time may be (agent clocks drift; a day is generous).
const maxAhead = 24 * time.Hour

// checkName refuses a name PostgreSQL cannot store: 400 naming the field.
func checkName(field, v string) error {
	if err := pgdb.ValidName(v); err != nil {
		return fail(http.StatusBadRequest, "bad "+field+": "+err.Error(), fmt.Errorf("%s %q", field, v))
	}
	return nil
}

// checkService is checkName for a service name, with its length bound.
func checkService(v string) error {
	if err := checkName("service name", v); err != nil {
		return err
	}
	if n := len(url.PathEscape(v)); n > maxServiceLen {
		return fail(http.StatusBadRequest, fmt.Sprintf("bad service name: longer than %d bytes once URL-escaped", maxServiceLen),
			fmt.Errorf("%d bytes, %d escaped", len(v), n))
	}
	return nil
}

// checkTime refuses a time that ClickHouse cannot store or that no agent clock would give.
func checkTime(field string, t, now time.Time) error {
	var reason string
	switch {
	case !profile.StorableTime(t):
		reason = "outside the range of a ClickHouse DateTime (1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z)"
	case t.Before(minTime):
		reason = "before " + minTime.Format(time.RFC3339)
	case t.After(now.Add(maxAhead)):
		reason = fmt.Sprintf("more than %s after the server's time %s", maxAhead, now.UTC().Format(time.RFC3339))
	default:
		return nil
	}
	return fail(http.StatusBadRequest, "bad "+field+": "+t.Format(time.RFC3339Nano)+" is "+reason, nil)
}

// checkPeriod applies checkTime to both ends of an upload's period and refuses an end before the start.
func checkPeriod(start, end, now time.Time) error {
	if err := checkTime("start_time", start, now); err != nil {
		return err
	}
	if err := checkTime("end_time", end, now); err != nil {
		return err
	}
	if end.Before(start) {
		return fail(http.StatusBadRequest, "bad end_time: "+end.Format(time.RFC3339Nano)+" is before start_time "+
			start.Format(time.RFC3339Nano), nil)
	}
	return nil
}

// cleanText returns s with each NUL byte and each invalid UTF-8 sequence replaced by U+FFFD; s itself when
// it has neither (the usual case, without allocating).
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// cleanTexts applies cleanText to every element, copying the slice only when one changes.
func cleanTexts(ss []string) []string {
	for i, s := range ss {
		if c := cleanText(s); c != s {
			out := append([]string(nil), ss...)
			for j := i; j < len(out); j++ {
				out[j] = cleanText(out[j])
			}
			return out
		}
	}
	return ss
}

// cleanJSON returns a JSON value PostgreSQL's jsonb accepts: raw itself when it is valid UTF-8 without a
// \u escape (which might be \u0000 or a lone surrogate, both refused by jsonb), else the value decoded,
// its strings and keys passed through cleanText, and encoded again (numbers kept as written). A value that
// does not decode is dropped (nil).
func cleanJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)) {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	out, err := json.Marshal(cleanValue(v))
	if err != nil {
		return nil
	}
	return out
}

func cleanValue(v any) any {
	switch x := v.(type) {
	case string:
		return cleanText(x)
	case []any:
		for i := range x {
			x[i] = cleanValue(x[i])
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[cleanText(k)] = cleanValue(e)
		}
		return out
	}
	return v
}
