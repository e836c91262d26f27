package profile

import "time"

// MaxStorableUnix is the last second (2106-02-07T06:28:15Z) a ClickHouse
// DateTime column can hold: it stores seconds since 1970 in a UInt32, so an
// earlier or later time would be stored as another one.
const MaxStorableUnix = 1<<32 - 1

// StorableTime reports whether t, truncated to the second, fits a ClickHouse
// DateTime column (1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z) and so is
// stored as it is.
func StorableTime(t time.Time) bool {
	s := t.Unix()
	return s >= 0 && s <= MaxStorableUnix
}
