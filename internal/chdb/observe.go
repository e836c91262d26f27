package chdb

// observe hands the body of a statement about to be sent to the Options.Observe hook, if there is one. It
// is called once per statement the caller asked for (not per retry, nor for the SET statements of a
// limited connection's session), so a recording is the list of the statements Flamestream's code wrote:
// the current-ClickHouse harness (internal/chcompat) replays it on another server.
func (d *DB) observe(body string) {
	if d.observer != nil {
		d.observer(body)
	}
}
