#!/usr/bin/env bash
# The project's one test command (README, "Tests"); .ci/run runs exactly this.
# It prepares what the tests need on a clean machine, then runs vet, the
# tests, the race detector on the concurrent packages and short fuzz runs.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-15s}

step() { printf '\n== %s\n' "$*"; }

step "go vet"
go vet ./...

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "test dependencies"
# Debian packages the tests use, installed when missing (one apt-get update
# for all): kcat (librdkafka's client) for the interoperability test
# (pipeline/kcat_test.go), and promtool (Debian's prometheus package; its
# server is not started) for the checks of the alerting rules, their unit
# tests and the dashboard's queries (deploy/deploy_test.go). Both tests fail
# under CI=true without them.
missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "kcat: $(command -v kcat); promtool: $(command -v promtool)"
# confluent-kafka (PyPI's librdkafka-based Python client; its manylinux
# wheel bundles librdkafka) for the Python interoperability test
# (pipeline/interop_test.go), in a venv under .cache/pyenv made only when
# it lacks the pinned version. The tests take the interpreter from
# CHURNFLOW_PYTHON and, under CI=true, fail without it.
CONFLUENT_KAFKA_VERSION=2.16.1
pyenv_dir="$PWD/.cache/pyenv"
has_confluent() {
	"$pyenv_dir/bin/python" -c "import sys, confluent_kafka, importlib.metadata as m; sys.exit(m.version('confluent-kafka') != '$CONFLUENT_KAFKA_VERSION')" 2>/dev/null
}
if ! has_confluent; then
	mkdir -p "$(dirname "$pyenv_dir")"
	if ! python3 -m venv --clear "$pyenv_dir"; then
		# Debian's own python3 keeps venv (ensurepip) in python3-venv.
		sudo=""
		[ "$(id -u)" -eq 0 ] || sudo="sudo"
		$sudo apt-get update -qq
		$sudo apt-get install -y -qq python3-venv
		python3 -m venv --clear "$pyenv_dir"
	fi
	"$pyenv_dir/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: \
		"confluent-kafka==$CONFLUENT_KAFKA_VERSION"
	has_confluent || { echo "confluent-kafka $CONFLUENT_KAFKA_VERSION did not install in $pyenv_dir"; exit 1; }
fi
export CHURNFLOW_PYTHON="$pyenv_dir/bin/python"
echo "confluent-kafka: $("$CHURNFLOW_PYTHON" -c 'import confluent_kafka as c; print(c.__version__, "librdkafka", c.libversion()[0])') ($CHURNFLOW_PYTHON)"

step "go test"
# CHURNFLOW_REAL_KAFKA=1: the real Apache Kafka tests run too; their harness
# (internal/kafkatest, scripts/kafka-local.sh) fetches the broker's jars from
# Maven Central into .cache/kafka the first time, and the Kafka Streams
# peer (benchmarks/peers/kafka-streams) is built with Maven, its
# dependencies in .cache/m2.
CHURNFLOW_REAL_KAFKA=1 go test -count=1 ./...

step "race detector on the concurrent packages"
race_pkgs=()
for p in ./pipeline/... ./state/... ./internal/replay/...; do
	[ -d "${p%/...}" ] && race_pkgs+=("$p")
done
if [ ${#race_pkgs[@]} -gt 0 ]; then
	go test -count=1 -race "${race_pkgs[@]}"
else
	echo "no concurrent packages yet"
fi

step "benchmark harness, quick profile (reports figures; asserts none)"
# churnflow bench --quick: every phase on a small data set and the embedded
# broker, so that the harness cannot rot. Its figures are for the log, not a
# gate: CI machines are shared and noisy (docs/performance.md). The Kafka
# Streams peer's agreement with churnflow is checked by
# TestPeerAgreesOnRealKafka (benchmarks/harness) in the go test step above.
go run ./cmd/churnflow bench --quick

step "fuzz (${FUZZTIME} each)"
for target in FuzzDecode FuzzDecodeJSONGrammar FuzzStateCodec; do
	go test ./operators -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME"
done

step "all tests passed"
