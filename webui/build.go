package webui

// The browser bundle in dist/ is committed so that `go build` works on a fresh
// clone without a build step. After editing anything under src/, run
// `go generate ./webui` (TestBundleIsUpToDate fails until you do).

//go:generate go run ./internal/bundle/gen -src src -out dist
