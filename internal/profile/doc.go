// Package profile parses the profile text that the gProfiler agent uploads:
// a first line holding "#" and a JSON header, followed by one collapsed stack
// per line ("FIELDS;comm;frame;...;frame COUNT").
//
// The package is pure logic with no I/O. It provides the header parser
// (ParseHeader), a streaming, allocation-free line parser (Parse, and ParseAs
// for the layout of an endpoint: FormatV1 lines have no prefix fields
// whatever the header says), stack helpers (StackHash, SplitStack, Runtime),
// the container-name rules of the original gProfiler Performance Studio
// (ContainerInfo), a per-profile aggregator for the indexer (Aggregate) and
// the check ingest runs before accepting an upload (Check).
//
// Counts are stored exactly or refused: a line's count, and the total of one
// stack of one container over a profile, must be at most MaxCount (the
// ClickHouse column is a UInt32). Frame text is kept byte for byte, NUL and
// invalid UTF-8 included: it goes to ClickHouse String columns, which hold
// any bytes.
package profile
