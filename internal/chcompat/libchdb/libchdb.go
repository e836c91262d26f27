// Package libchdb points chdb-go at the libchdb.so that deploy/local/install.sh fetched, before chdb-go's
// own package initialisation looks for it (and panics when it finds none). Import it for its side effect
// in any package that imports chdb-go's chdb-purego.
//
// Why an init side effect: chdb-purego loads the library in its init function, from CHDB_LIB_PATH or a
// few system paths, so the variable must be set before that init runs, that is by a package initialised
// earlier. The Go specification initialises packages in import-path order among those whose imports are
// ready; this package imports only os, which is ready long before chdb-purego's os/exec, and so it always
// runs first. TestLibraryFound in internal/chcompat checks that it did.
package libchdb

import "os"

// Env is the variable chdb-go reads the library's path from.
const Env = "CHDB_LIB_PATH"

// Path is where the library was found, empty when it was not: the value of CHDB_LIB_PATH if it was set,
// else the first of .local/chdb/libchdb.so in the working directory or one of its parents (tests run in
// their package's directory, inside the repository).
var Path = find()

func find() string {
	if p := os.Getenv(Env); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for range 8 {
		p := dir + "/.local/chdb/libchdb.so"
		if _, err := os.Stat(p); err == nil {
			_ = os.Setenv(Env, p)
			return p
		}
		i := len(dir) - 1
		for i > 0 && dir[i] != '/' {
			i--
		}
		if i <= 0 {
			break
		}
		dir = dir[:i]
	}
	// chdb-go panics next; say what to do about it first.
	_, _ = os.Stderr.WriteString("libchdb: libchdb.so not found: run `bash deploy/local/install.sh` or set " + Env + "\n")
	return ""
}
