package pgdb

import "context"

// LoginWith is Login with the password comparer given, for tests outside the package.
func (d *DB) LoginWith(ctx context.Context, username, password string, compare func(hash, password []byte) error) (string, Session, error) {
	return d.login(ctx, username, password, compare)
}
