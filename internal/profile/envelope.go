package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Formats of the other front doors. Their stored object is an envelope (see
// Envelope): the request as received, with what the body alone does not say.
const (
	// FormatPyroscope is a Pyroscope POST /ingest request (folded, lines or
	// pprof, multipart or not).
	FormatPyroscope Format = "pyroscope"
	// FormatOTLP is an OTLP/HTTP protobuf ExportProfilesServiceRequest. One
	// request may hold several services and hosts: the event's format is
	// "otlp/N", N the index of the (service, host, instance type) group it
	// indexes, in the order DescribeOTLP returns them.
	FormatOTLP Format = "otlp"
)

// Envelope kinds.
const (
	envelopePyroscope = "pyroscope"
	envelopeOTLP      = "otlp"
)

// Envelope is the first line of a stored object of the Pyroscope and OTLP
// front doors: "#" and this JSON, then "\n" and the request body exactly as
// it arrived (after its Content-Encoding is undone). It keeps what the body
// alone does not tell, so the object can be parsed again later by itself.
type Envelope struct {
	// Kind is "pyroscope" or "otlp".
	Kind string `json:"envelope"`
	// Query is the request's raw query string (Pyroscope: name, from, until,
	// format, units, spyName, sampleRate, ...).
	Query string `json:"query,omitempty"`
	// ContentType is the request's Content-Type (a multipart boundary).
	ContentType string `json:"content_type,omitempty"`
	// Service is the service of OTLP resources without service.name (the
	// request's ?service= or its GPROFILER-SERVICE-NAME header).
	Service string `json:"service,omitempty"`
	// Received is when ingest accepted the request: the time of a profile
	// that carries none.
	Received time.Time `json:"received"`
}

// Encode returns the object text of body in this envelope.
func (e Envelope) Encode(body []byte) []byte {
	head, _ := json.Marshal(e) // only strings and a time: cannot fail
	out := make([]byte, 0, len(head)+len(body)+2)
	out = append(out, '#')
	out = append(out, head...)
	out = append(out, '\n')
	return append(out, body...)
}

// ErrNotEnvelope is returned when an object of an envelope format does not
// start with an envelope line of the expected kind.
var ErrNotEnvelope = errors.New("not an envelope of this format")

// decodeEnvelope splits an object text into its envelope and body.
func decodeEnvelope(text []byte, kind string) (Envelope, []byte, error) {
	var e Envelope
	first, body, ok := bytes.Cut(text, []byte{'\n'})
	if !ok || len(first) == 0 || first[0] != '#' {
		return e, nil, ErrNotEnvelope
	}
	if err := json.Unmarshal(first[1:], &e); err != nil {
		return e, nil, fmt.Errorf("%w: %v", ErrNotEnvelope, err)
	}
	if e.Kind != kind {
		return e, nil, fmt.Errorf("%w: kind %q, want %q", ErrNotEnvelope, e.Kind, kind)
	}
	return e, body, nil
}

// envelopeFormat reports whether f is a format of the other front doors, and
// for FormatOTLP the group it selects.
func envelopeFormat(f Format) (kind string, group int, ok bool, err error) {
	switch {
	case f == FormatPyroscope:
		return envelopePyroscope, 0, true, nil
	case f == FormatOTLP:
		return envelopeOTLP, 0, true, nil
	case strings.HasPrefix(string(f), string(FormatOTLP)+"/"):
		n, err := strconv.Atoi(string(f[len(FormatOTLP)+1:]))
		if err != nil || n < 0 || n >= maxOTLPGroups {
			return "", 0, true, fmt.Errorf("unknown profile format %q", string(f))
		}
		return envelopeOTLP, n, true, nil
	}
	return "", 0, false, nil
}

// OTLPGroupFormat is the format of an event indexing group n of an OTLP
// request.
func OTLPGroupFormat(n int) Format {
	return FormatOTLP + Format("/"+strconv.Itoa(n))
}

// parseEnvelope is ParseAs for the envelope formats: fn gets one Line per
// sample (Number is the sample's ordinal in the request, from 1), and the
// Header holds the host only.
func parseEnvelope(text []byte, kind string, group int, fn func(*Line) error) (Header, error) {
	var units []Unit
	var err error
	switch kind {
	case envelopePyroscope:
		units, err = describePyroscope(text, fn)
	case envelopeOTLP:
		units, err = describeOTLP(text, group, fn)
	}
	if err != nil {
		return Header{}, err
	}
	if group >= len(units) {
		return Header{}, fmt.Errorf("the request has no group %d (it has %d)", group, len(units))
	}
	u := units[group]
	return Header{Hostname: u.Host, InstanceType: u.InstanceType}, nil
}

// Unit is what one event of a front-door request indexes: one service, host
// and instance type over a period.
type Unit struct {
	// Format is the event's format (FormatPyroscope, or OTLPGroupFormat(n)).
	Format Format
	// Service, Host and InstanceType are the event's dimensions; containers
	// are per sample (Line.Container).
	Service, Host, InstanceType string
	// Start and End are the period of the samples.
	Start, End time.Time
	// Samples is the total of the samples' counts (CPU samples only).
	Samples uint64
	// Stacks is the number of distinct (container, stack) entries.
	Stacks int
	// Content is what identifies the request: a retry of it has the same
	// (the query and the profile, not a multipart boundary or the time it
	// was received).
	Content []byte
	// Skipped says why a request holds nothing to index (not a CPU profile);
	// empty otherwise.
	Skipped string
}

// Describe parses an object of the Pyroscope or OTLP format, checks every
// sample as the indexer will read it (counts at most MaxCount, per sample and
// per stack of one container over a unit), and returns the units to publish:
// one for Pyroscope, one per (service, host, instance type) group for OTLP.
// A request holding no CPU samples returns one Unit whose Skipped says why.
func Describe(text []byte, f Format) ([]Unit, error) {
	kind, _, ok, err := envelopeFormat(f)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("unknown profile format %q", string(f))
	}
	if kind == envelopePyroscope {
		return describePyroscope(text, nil)
	}
	return describeOTLP(text, -1, nil)
}

// checkedUnit folds the lines of one unit into an Aggregate, which enforces
// the per-stack MaxCount rule, and counts them into u.
type checkedUnit struct {
	agg Aggregate
}

func (c *checkedUnit) add(l *Line) error { return c.agg.Add(l) }

// fill sets the totals of u from the aggregate.
func (c *checkedUnit) fill(u *Unit) {
	u.Samples = c.agg.Samples()
	u.Stacks = len(c.agg.Entries())
}
