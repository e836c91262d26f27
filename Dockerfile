# syntax=docker/dockerfile:1
# The one Flamestream binary in a small image. Every role is a subcommand: the image's default command is
# `all`; deploy/docker-compose.yml and deploy/k8s run `ingest`, `indexer`, `query` and `migrate` from it.
#
#   docker build -t flamestream:local .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO off: a static binary that runs on distroless/static. The web UI bundle (webui/dist) is committed and
# embedded with go:embed, so no Node or esbuild step is needed here.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" \
      -o /out/flamestream ./cmd/flamestream

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flamestream /usr/local/bin/flamestream
USER nonroot:nonroot
# 8080: ingest (agent API; `all` serves the UI here too). 8081: query API and web UI; /healthz, /readyz and
# /metrics of the indexer.
EXPOSE 8080 8081
ENV FLAMESTREAM_INGEST_ADDR=0.0.0.0:8080 \
    FLAMESTREAM_QUERY_ADDR=0.0.0.0:8081 \
    FLAMESTREAM_LOG_FORMAT=json \
    FLAMESTREAM_DATA_DIR=/tmp/flamestream
ENTRYPOINT ["/usr/local/bin/flamestream"]
CMD ["all"]
