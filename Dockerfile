# syntax=docker/dockerfile:1
#
# churnflow's container image: one static binary on distroless, running as
# a non-root user. Build and run (needs a Docker engine):
#
#   docker build -t churnflow:dev .
#   docker run --rm -e CHURNFLOW_KAFKA_BROKERS=kafka:9092 -v churnflow-state:/var/lib/churnflow churnflow:dev
#
# deploy/docker-compose.yml builds it with Kafka, Prometheus and Grafana;
# deploy/k8s/ runs it as a StatefulSet. docs/operations.md, "Deploying".

# ---- build stage -----------------------------------------------------------
FROM golang:1.26 AS build
WORKDIR /src

# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# A static binary (no cgo: distroless/static has no libc), with the build
# machine's paths trimmed. No version ldflags: cmd/churnflow has no version
# variable to set (Go stamps the module and VCS information it can find).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -o /out/churnflow ./cmd/churnflow \
 && mkdir -p /out/state

# ---- final stage -----------------------------------------------------------
# distroless/static: CA certificates, /etc/passwd with the nonroot user
# (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=build /out/churnflow /churnflow
# The state directory must belong to the user: a named volume mounted on it
# takes the image directory's owner the first time.
COPY --from=build --chown=65532:65532 /out/state /var/lib/churnflow
# The default configuration: state in /var/lib/churnflow, HTTP on
# 0.0.0.0:8080, JSON logs. Set the brokers with CHURNFLOW_KAFKA_BROKERS, or
# mount your own file over it.
COPY deploy/docker/churnflow.yaml /etc/churnflow/churnflow.yaml

USER 65532:65532
VOLUME ["/var/lib/churnflow"]
# Metrics (/metrics), health (/healthz, /readyz) and the member API (/v1/).
EXPOSE 8080

ENTRYPOINT ["/churnflow"]
CMD ["run", "--config", "/etc/churnflow/churnflow.yaml"]
