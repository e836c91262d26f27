// Package profile parses the profile text that the gProfiler agent uploads:
// a first line holding "#" and a JSON header, followed by one collapsed stack
// per line ("FIELDS;comm;frame;...;frame COUNT").
//
// The package is pure logic with no I/O. It provides the header parser
// (ParseHeader), a streaming, allocation-free line parser (Parse), stack
// helpers (StackHash, SplitStack, Runtime), the container-name rules of the
// original gProfiler Performance Studio (ContainerInfo) and a per-profile
// aggregator for the indexer (Aggregate).
package profile
