#!/usr/bin/env bash
# Real Apache Kafka (KRaft, from Maven Central jars) on loopback, for tests and
# by hand. No Docker, no tarball: scripts/kafka/pom.xml + mvn give the classpath.
#
#   scripts/kafka-local.sh fetch                       jars into the cache (once)
#   scripts/kafka-local.sh up --nodes 1|3 --dir DIR [--secure SECDIR]
#                                                      start, print BOOTSTRAP=...
#   scripts/kafka-local.sh down --dir DIR [--kill]     stop (TERM, wait, KILL)
#   scripts/kafka-local.sh kill --dir DIR --node N [--signal KILL|TERM]
#   scripts/kafka-local.sh start --dir DIR --node N    restart one stopped node
#   scripts/kafka-local.sh status --dir DIR
#
# `up` prints exactly one line on stdout, BOOTSTRAP=127.0.0.1:P1[,...], once the
# cluster answers metadata requests with all its brokers; everything else goes
# to stderr. DIR must be new or empty (a formatted directory cannot be
# formatted again). Layout: DIR/node-N/{server.properties,data/,kafka.log,pid},
# DIR/bootstrap, DIR/nodes.
#
# --secure SECDIR adds two listeners to every node (the PLAINTEXT one stays,
# and brokers talk to each other over it), and `up` prints two more lines,
# SSL=127.0.0.1:S1[,...] and SASL_PLAINTEXT=127.0.0.1:A1[,...]:
#   SSL             TLS with a client certificate required (ssl.client.auth);
#   SASL_PLAINTEXT  SASL with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
# SECDIR holds (internal/kafkatest writes them; Go's crypto/x509 or openssl):
#   broker.pem  the broker's private key (PKCS#8 PEM, unencrypted) and its
#               certificate chain, for 127.0.0.1 (ssl.keystore.type=PEM);
#   ca.pem      the CA certificates that client certificates must chain to
#               (ssl.truststore.type=PEM);
#   users       one "name password" line per SASL user ([A-Za-z0-9._-]):
#               PLAIN users in the listener's JAAS configuration, SCRAM
#               credentials (both hashes) written by `kafka-storage format
#               --add-scram` into the metadata log.
#
# Environment:
#   CHURNFLOW_KAFKA_CACHE          jar cache (default $REPO/.cache/kafka)
#   CHURNFLOW_KAFKA_START_TIMEOUT  seconds to wait for readiness (default 90)
#   CHURNFLOW_KAFKA_STOP_TIMEOUT   seconds between SIGTERM and SIGKILL (default 20)
#   CHURNFLOW_KAFKA_HEAP           heap per broker (default 512m)
#   JAVA                           java binary (default: java on PATH)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
POM="$SCRIPT_DIR/kafka/pom.xml"
LOG4J_CONF="$SCRIPT_DIR/kafka/log4j2.properties"
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)
CACHE=${CHURNFLOW_KAFKA_CACHE:-$REPO/.cache/kafka}
KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
LIBS="$KAFKA_HOME/libs"
JAVA=${JAVA:-java}
HEAP=${CHURNFLOW_KAFKA_HEAP:-512m}
START_TIMEOUT=${CHURNFLOW_KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${CHURNFLOW_KAFKA_STOP_TIMEOUT:-20}

log() { printf 'kafka-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now_ms() { date +%s%3N; }

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# ---------------------------------------------------------------- fetch

fetch() {
	[ -n "$KAFKA_VERSION" ] || die "no <kafka.version> in $POM"
	if [ -f "$KAFKA_HOME/.complete" ]; then
		log "jars cached: $LIBS (Kafka $KAFKA_VERSION)"
		return 0
	fi
	command -v mvn >/dev/null 2>&1 || die "mvn not found (needed once to fetch Kafka $KAFKA_VERSION jars)"
	mkdir -p "$CACHE"
	# Serialise concurrent fetches (parallel test packages).
	exec 9>"$CACHE/.fetch.lock"
	flock 9
	if [ -f "$KAFKA_HOME/.complete" ]; then
		log "jars cached: $LIBS (fetched concurrently)"
		exec 9>&-
		return 0
	fi
	local t0 tmp
	t0=$(now_ms)
	tmp="$CACHE/.kafka-$KAFKA_VERSION.tmp.$$"
	rm -rf "$tmp" "$KAFKA_HOME"
	log "fetching Kafka $KAFKA_VERSION jars from Maven into $LIBS ..."
	if ! (cd "$SCRIPT_DIR/kafka" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp/libs" >&2); then
		rm -rf "$tmp"
		die "mvn dependency:copy-dependencies failed (see above)"
	fi
	ls "$tmp/libs"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after fetch"; }
	touch "$tmp/.complete"
	mv "$tmp" "$KAFKA_HOME"
	exec 9>&-
	log "fetched $(ls "$LIBS" | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) in $(($(now_ms) - t0)) ms"
}

# ---------------------------------------------------------------- helpers

# A loopback TCP port that nothing listens on right now. Races with other
# processes are possible; `up` retries when a broker fails to bind.
declare -A TAKEN=()
pick_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		[ -z "${TAKEN[$p]:-}" ] || continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
				TAKEN[$p]=1
				echo "$p"
				return 0
			fi
		fi
	done
	die "no free port found"
}

node_pid() { # DIR N -> pid if the node's java process is alive, else nothing
	local f="$1/node-$2/pid" pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
	# Only ever signal our own broker: java running kafka.Kafka on this node's file.
	if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $1/node-$2/server.properties"; then
		echo "$pid"
	fi
}

node_running() { # DIR N -> true while the process started for the node lives
	# Unlike node_pid, this does not ask for java's command line: between
	# the fork in start_node and its exec of java, the process still runs
	# this script's command line, and a node checked in that window (a
	# loaded machine) was taken for dead and killed during start-up.
	local f="$1/node-$2/pid" pid st
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	[ -n "$pid" ] || return 1
	st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

java_cmd() { # prints nothing; runs java with the broker classpath
	"$JAVA" -Xms"$HEAP" -Xmx"$HEAP" -XX:+ExitOnOutOfMemoryError \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$LOG4J_CONF" \
		-Dkafka.logs.dir="$DIR/logs" \
		-cp "$LIBS/*" "$@"
}

write_props() { # N
	local n=$1 f="$DIR/node-$1/server.properties"
	{
		echo "# written by scripts/kafka-local.sh"
		echo "process.roles=broker,controller"
		echo "node.id=$n"
		if [ "$NODES" -eq 1 ]; then
			echo "controller.quorum.bootstrap.servers=127.0.0.1:${CPORT[1]}"
		else
			echo "controller.quorum.voters=$VOTERS"
		fi
		if [ -n "$SECURE" ]; then
			# PLAINTEXT first and CONTROLLER last: load_cluster reads the ports so.
			local l="PLAINTEXT://127.0.0.1:${PPORT[$n]},SSL://127.0.0.1:${SPORT[$n]},SASL_PLAINTEXT://127.0.0.1:${APORT[$n]},CONTROLLER://127.0.0.1:${CPORT[$n]}"
			echo "listeners=$l"
			echo "advertised.listeners=$l"
			echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
			echo "listener.name.ssl.ssl.keystore.type=PEM"
			echo "listener.name.ssl.ssl.keystore.location=$SECURE/broker.pem"
			echo "listener.name.ssl.ssl.truststore.type=PEM"
			echo "listener.name.ssl.ssl.truststore.location=$SECURE/ca.pem"
			echo "listener.name.ssl.ssl.client.auth=required"
			echo "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
			echo "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$PLAIN_USERS;"
			echo "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
			echo "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
		else
			echo "listeners=PLAINTEXT://127.0.0.1:${PPORT[$n]},CONTROLLER://127.0.0.1:${CPORT[$n]}"
			echo "advertised.listeners=PLAINTEXT://127.0.0.1:${PPORT[$n]},CONTROLLER://127.0.0.1:${CPORT[$n]}"
			echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
		fi
		echo "controller.listener.names=CONTROLLER"
		echo "inter.broker.listener.name=PLAINTEXT"
		echo "log.dirs=$DIR/node-$n/data"
		echo "metadata.log.dir=$DIR/node-$n/data"
		echo "num.partitions=1"
		echo "default.replication.factor=$RF"
		echo "min.insync.replicas=$MIN_ISR"
		echo "offsets.topic.replication.factor=$RF"
		echo "offsets.topic.num.partitions=$OFFSETS_PARTITIONS"
		echo "transaction.state.log.replication.factor=$RF"
		echo "transaction.state.log.min.isr=$MIN_ISR"
		echo "transaction.state.log.num.partitions=$OFFSETS_PARTITIONS"
		echo "share.coordinator.state.topic.replication.factor=$RF"
		echo "share.coordinator.state.topic.min.isr=$MIN_ISR"
		echo "group.initial.rebalance.delay.ms=0"
		# Tests let a killed consumer's membership expire in a second or two
		# (Kafka's default minimum session timeout is 6 s; not dynamic).
		echo "group.min.session.timeout.ms=500"
		echo "log.cleaner.dedupe.buffer.size=2097152"
		echo "num.network.threads=2"
		echo "num.io.threads=2"
		echo "num.recovery.threads.per.data.dir=1"
		echo "background.threads=2"
		echo "auto.create.topics.enable=true"
		echo "delete.topic.enable=true"
	} >"$f"
}

start_node() { # N: starts the java process in its own session, pid in DIR/node-N/pid
	local n=$1 d="$DIR/node-$1"
	# setsid: survives the calling shell, and is not hit by ^C to a test run.
	setsid "$BASH" -c 'exec "$@"' kafka-node \
		"$JAVA" -Xms"$HEAP" -Xmx"$HEAP" -XX:+ExitOnOutOfMemoryError \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$LOG4J_CONF" \
		-Dkafka.logs.dir="$d" \
		-cp "$LIBS/*" kafka.Kafka "$d/server.properties" \
		</dev/null >>"$d/kafka.log" 2>&1 &
	echo $! >"$d/pid"
}

# Ready when a metadata request to every node lists all NODES brokers.
probe() {
	local n out
	for n in $(seq 1 "$NODES"); do
		if command -v kcat >/dev/null 2>&1; then
			out=$(kcat -L -b "127.0.0.1:${PPORT[$n]}" -m 2 2>/dev/null) || return 1
			grep -qE "^ *$NODES brokers:" <<<"$out" || return 1
		else
			# Fallback without kcat: TCP connect plus Kafka's own "started" line.
			(exec 3<>"/dev/tcp/127.0.0.1/${PPORT[$n]}") 2>/dev/null || return 1
			grep -q 'Kafka Server started' "$DIR/node-$n/kafka.log" || return 1
		fi
		if [ -n "$SECURE" ]; then
			(exec 3<>"/dev/tcp/127.0.0.1/${SPORT[$n]}") 2>/dev/null || return 1
			(exec 3<>"/dev/tcp/127.0.0.1/${APORT[$n]}") 2>/dev/null || return 1
		fi
	done
}

# read_secure checks SECDIR (--secure) and reads its users: PLAIN_USERS (the
# JAAS options) and SCRAM_ARGS (StorageTool format arguments).
read_secure() {
	PLAIN_USERS="" SCRAM_ARGS=()
	[ -n "$SECURE" ] || return 0
	[ -d "$SECURE" ] || die "--secure $SECURE: not a directory"
	SECURE=$(cd "$SECURE" && pwd)
	local f name pw rest
	for f in broker.pem ca.pem users; do
		[ -r "$SECURE/$f" ] || die "--secure $SECURE: no readable $f (see the usage: scripts/kafka-local.sh --help)"
	done
	while read -r name pw rest || [ -n "$name" ]; do
		[ -n "$name" ] || continue
		[[ "$name" =~ ^[A-Za-z0-9._-]+$ && "$pw" =~ ^[A-Za-z0-9._-]+$ && -z "$rest" ]] ||
			die "--secure $SECURE/users: want \"name password\" lines of [A-Za-z0-9._-], got \"$name ...\""
		PLAIN_USERS+=" user_$name=\"$pw\""
		SCRAM_ARGS+=(--add-scram "SCRAM-SHA-256=[name=$name,password=$pw]" --add-scram "SCRAM-SHA-512=[name=$name,password=$pw]")
	done <"$SECURE/users"
	[ -n "$PLAIN_USERS" ] || die "--secure $SECURE/users: no users"
}

parse_dir_args() {
	DIR="" NODE="" SIGNAL=TERM HARD=0 NODES=1 OWNER="" SECURE=""
	while [ $# -gt 0 ]; do
		case "$1" in
		--dir) DIR=$2; shift 2 ;;
		--nodes) NODES=$2; shift 2 ;;
		--node) NODE=$2; shift 2 ;;
		--signal) SIGNAL=$2; shift 2 ;;
		--kill) HARD=1; shift ;;
		--owner-pid) OWNER=$2; shift 2 ;;
		--secure) SECURE=$2; shift 2 ;;
		-h | --help) usage ;;
		*) die "unknown argument: $1" ;;
		esac
	done
	[ -n "$DIR" ] || die "--dir DIR is required"
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd)
}

load_cluster() {
	[ -f "$DIR/nodes" ] || die "$DIR holds no cluster (no $DIR/nodes)"
	NODES=$(cat "$DIR/nodes")
	declare -gA PPORT=() CPORT=()
	local n
	for n in $(seq 1 "$NODES"); do
		PPORT[$n]=$(sed -n 's:^listeners=PLAINTEXT\://127.0.0.1\:\([0-9]*\),.*:\1:p' "$DIR/node-$n/server.properties")
		CPORT[$n]=$(sed -n 's:^listeners=.*CONTROLLER\://127.0.0.1\:\([0-9]*\)$:\1:p' "$DIR/node-$n/server.properties")
	done
}

tail_logs() {
	local n
	for n in $(seq 1 "$NODES"); do
		[ -f "$DIR/node-$n/kafka.log" ] || continue
		log "---- last lines of $DIR/node-$n/kafka.log"
		tail -n 25 "$DIR/node-$n/kafka.log" >&2 || true
	done
}

stop_nodes() { # nodes... ; honours HARD and STOP_TIMEOUT
	local n pid pids=() deadline
	for n in "$@"; do
		pid=$(node_pid "$DIR" "$n")
		[ -n "$pid" ] && pids+=("$pid")
	done
	[ ${#pids[@]} -gt 0 ] || return 0
	if [ "$HARD" -eq 1 ]; then
		kill -KILL "${pids[@]}" 2>/dev/null || true
	else
		kill -TERM "${pids[@]}" 2>/dev/null || true
	fi
	deadline=$(($(date +%s) + STOP_TIMEOUT))
	while :; do
		local alive=()
		for pid in "${pids[@]}"; do
			kill -0 "$pid" 2>/dev/null && alive+=("$pid")
		done
		[ ${#alive[@]} -eq 0 ] && return 0
		if [ "$(date +%s)" -ge "$deadline" ]; then
			log "still running after ${STOP_TIMEOUT}s, SIGKILL: ${alive[*]}"
			kill -KILL "${alive[@]}" 2>/dev/null || true
			sleep 0.2
			return 0
		fi
		sleep 0.1
	done
}

# ---------------------------------------------------------------- commands

cmd_up() {
	parse_dir_args "$@"
	case "$NODES" in 1 | 3) ;; *) die "--nodes must be 1 or 3" ;; esac
	if [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
		die "$DIR is not empty; use a fresh directory per cluster"
	fi
	command -v "$JAVA" >/dev/null 2>&1 || die "java not found"
	read_secure
	fetch

	if [ "$NODES" -eq 1 ]; then RF=1 MIN_ISR=1 OFFSETS_PARTITIONS=4; else RF=3 MIN_ISR=2 OFFSETS_PARTITIONS=4; fi
	echo "$NODES" >"$DIR/nodes"
	local t0 attempt n cluster_id
	t0=$(now_ms)
	log "formatting $NODES node(s) in $DIR"
	cluster_id=$(java_cmd kafka.tools.StorageTool random-uuid 2>>"$DIR/format.log") ||
		{ cat "$DIR/format.log" >&2; die "StorageTool random-uuid failed"; }
	echo "$cluster_id" >"$DIR/cluster.id"

	for attempt in 1 2 3; do
		declare -gA PPORT=() CPORT=() SPORT=() APORT=()
		VOTERS=""
		for n in $(seq 1 "$NODES"); do
			PPORT[$n]=$(pick_port)
			CPORT[$n]=$(pick_port)
			if [ -n "$SECURE" ]; then
				SPORT[$n]=$(pick_port)
				APORT[$n]=$(pick_port)
			fi
			VOTERS="${VOTERS:+$VOTERS,}$n@127.0.0.1:${CPORT[$n]}"
		done
		# Format all nodes in parallel (one JVM each, ~1 s).
		local fpids=()
		for n in $(seq 1 "$NODES"); do
			rm -rf "$DIR/node-$n"
			mkdir -p "$DIR/node-$n/data"
			write_props "$n"
			local fmt=(format -t "$cluster_id" -c "$DIR/node-$n/server.properties")
			[ "$NODES" -eq 1 ] && fmt+=(--standalone)
			fmt+=("${SCRAM_ARGS[@]}")
			java_cmd kafka.tools.StorageTool "${fmt[@]}" >>"$DIR/node-$n/format.log" 2>&1 &
			fpids+=($!)
		done
		for n in $(seq 1 "$NODES"); do
			if ! wait "${fpids[$((n - 1))]}"; then
				cat "$DIR/node-$n/format.log" >&2
				die "StorageTool format failed for node $n"
			fi
		done
		local tf
		tf=$(now_ms)
		log "formatted in $((tf - t0)) ms; starting (attempt $attempt)"
		for n in $(seq 1 "$NODES"); do start_node "$n"; done

		local deadline=$(($(date +%s) + START_TIMEOUT)) dead="" bindfail=""
		while :; do
			for n in $(seq 1 "$NODES"); do
				if ! node_running "$DIR" "$n"; then dead="$n"; fi
			done
			if [ -n "$dead" ]; then
				if grep -qE 'Address already in use|BindException' "$DIR/node-$dead/kafka.log" 2>/dev/null; then
					bindfail=1
				fi
				break
			fi
			if probe; then
				local bs="" t1
				t1=$(now_ms)
				for n in $(seq 1 "$NODES"); do bs="${bs:+$bs,}127.0.0.1:${PPORT[$n]}"; done
				echo "$bs" >"$DIR/bootstrap"
				echo "$((t1 - tf))" >"$DIR/startup.ms"
				local ssl="" sasl=""
				if [ -n "$SECURE" ]; then
					for n in $(seq 1 "$NODES"); do
						ssl="${ssl:+$ssl,}127.0.0.1:${SPORT[$n]}"
						sasl="${sasl:+$sasl,}127.0.0.1:${APORT[$n]}"
					done
				fi
				log "ready in $((t1 - tf)) ms after start ($((t1 - t0)) ms with format); pids $(cat "$DIR"/node-*/pid | tr '\n' ' ')"
				if [ -n "$OWNER" ]; then start_watchdog "$OWNER"; fi
				echo "BOOTSTRAP=$bs"
				if [ -n "$SECURE" ]; then
					echo "SSL=$ssl"
					echo "SASL_PLAINTEXT=$sasl"
				fi
				return 0
			fi
			if [ "$(date +%s)" -ge "$deadline" ]; then
				tail_logs
				HARD=1 stop_nodes $(seq 1 "$NODES")
				die "cluster not ready after ${START_TIMEOUT}s"
			fi
			sleep 0.2
		done
		# A node died during start-up.
		HARD=1 stop_nodes $(seq 1 "$NODES")
		if [ -n "$bindfail" ] && [ "$attempt" -lt 3 ]; then
			log "node $dead lost a port race; retrying with new ports"
			for n in $(seq 1 "$NODES"); do mv "$DIR/node-$n/kafka.log" "$DIR/node-$n.attempt$attempt.log" 2>/dev/null || true; done
			continue
		fi
		tail_logs
		die "node $dead exited during start-up (log: $DIR/node-$dead/kafka.log)"
	done
}

# Kills the cluster when the owning process (a go test binary) goes away
# without running its cleanup (test timeout panic, SIGKILL, ^C).
start_watchdog() {
	local owner=$1
	setsid "$BASH" -c '
		owner=$1; script=$2; dir=$3
		while kill -0 "$owner" 2>/dev/null && [ -f "$dir/nodes" ] && [ ! -f "$dir/.down" ]; do sleep 1; done
		[ -f "$dir/.down" ] || exec "$script" down --dir "$dir" --kill
	' watchdog "$owner" "$SCRIPT_DIR/kafka-local.sh" "$DIR" </dev/null >/dev/null 2>&1 &
	echo $! >"$DIR/watchdog.pid"
}

cmd_down() {
	parse_dir_args "$@"
	[ -f "$DIR/nodes" ] || { log "no cluster in $DIR"; return 0; }
	NODES=$(cat "$DIR/nodes")
	touch "$DIR/.down"
	local t0
	t0=$(now_ms)
	stop_nodes $(seq 1 "$NODES")
	log "stopped $NODES node(s) in $(($(now_ms) - t0)) ms"
}

cmd_kill() {
	parse_dir_args "$@"
	[ -n "$NODE" ] || die "--node N is required"
	[ -f "$DIR/nodes" ] || die "no cluster in $DIR"
	local pid
	pid=$(node_pid "$DIR" "$NODE")
	[ -n "$pid" ] || die "node $NODE is not running"
	case "$SIGNAL" in
	KILL | 9 | SIGKILL) kill -KILL "$pid" ;;
	TERM | 15 | SIGTERM) HARD=0 stop_nodes "$NODE" ;;
	*) die "--signal must be KILL or TERM" ;;
	esac
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	log "node $NODE (pid $pid) stopped with SIG$SIGNAL"
}

cmd_start() {
	parse_dir_args "$@"
	[ -n "$NODE" ] || die "--node N is required"
	load_cluster
	[ -z "$(node_pid "$DIR" "$NODE")" ] || die "node $NODE is already running"
	start_node "$NODE"
	local deadline=$(($(date +%s) + START_TIMEOUT))
	until (exec 3<>"/dev/tcp/127.0.0.1/${PPORT[$NODE]}") 2>/dev/null; do
		node_running "$DIR" "$NODE" || { tail_logs; die "node $NODE exited"; }
		[ "$(date +%s)" -lt "$deadline" ] || die "node $NODE not listening after ${START_TIMEOUT}s"
		sleep 0.2
	done
	log "node $NODE restarted (pid $(cat "$DIR/node-$NODE/pid")), listening on 127.0.0.1:${PPORT[$NODE]}"
}

cmd_status() {
	parse_dir_args "$@"
	load_cluster
	local n pid
	for n in $(seq 1 "$NODES"); do
		pid=$(node_pid "$DIR" "$n")
		if [ -n "$pid" ]; then
			echo "node $n: running pid $pid port ${PPORT[$n]} rss $(awk '/VmRSS/{print $2 " " $3}' "/proc/$pid/status")"
		else
			echo "node $n: stopped port ${PPORT[$n]}"
		fi
	done
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
fetch) fetch ;;
up) cmd_up "$@" ;;
down) cmd_down "$@" ;;
kill) cmd_kill "$@" ;;
start) cmd_start "$@" ;;
status) cmd_status "$@" ;;
-h | --help | help) usage ;;
*) die "unknown command: $cmd" ;;
esac
