package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"gopkg.in/yaml.v3"

	"github.com/churnflow/churnflow/internal/httpapi"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// runFlagKeys are the flags of "churnflow run" that set a configuration
// key, in the order of the help text.
var runFlagKeys = []struct{ name, key, typ, usage string }{
	{"brokers", "kafka.brokers", "h:p,...", "Kafka bootstrap brokers"},
	{"group", "kafka.group", "NAME", "consumer group id; instances of one group share the partitions"},
	{"state", "state.dir", "DIR", "state directory (member state, timers, offsets); one process at a time"},
	{"http", "http.listen", "ADDR", "address for metrics, health and the member API (empty: none)"},
	{"api-token", "http.api_token", "TOKEN", "bearer token of the member API"},
	{"create-topics", "kafka.create_topics", "bool", "create missing topics with the input topics' partition count"},
	{"memory", "state.memory_budget", "BYTES", "memory budget of the state store; GOMEMLIMIT follows from it"},
	{"log-level", "log.level", strings.Join(logLevels, "|"), "log level"},
	{"log-format", "log.format", strings.Join(logFormats, "|"), "log format; auto: console on a terminal, else json"},
}

// runFlags are the settings of "churnflow run".
type runFlags struct {
	config      string
	model       string
	printConfig bool
	keys        []*keyFlag
}

// keyFlag is a flag that sets one configuration key. Set checks the value
// with the configuration's own decoder, so a flag (or its CHURNFLOW_<FLAG>
// variable) is rejected with the message the file would give.
type keyFlag struct {
	key, typ string
	raw      string
}

func (f *keyFlag) String() string { return f.raw }
func (f *keyFlag) Type() string   { return f.typ }
func (f *keyFlag) Set(s string) error {
	cfg := defaultConfig()
	v, err := fieldByKey(reflect.ValueOf(&cfg).Elem(), f.key)
	if err != nil {
		return err
	}
	if err := decodeValue(v, flowValue(v, scalarSetting("", f.key, s).node), f.key); err != nil {
		var ke *keyError
		if errors.As(err, &ke) {
			return ke.err
		}
		return err
	}
	// The checks of this key alone (none of the flags' keys depends on
	// another), so the error names the flag rather than the key.
	if err := cfg.Validate(); err != nil {
		if msg, ok := strings.CutPrefix(err.Error(), "config "+f.key+": "); ok {
			return errors.New(msg)
		}
		if msg, ok := strings.CutPrefix(err.Error(), "config "+f.key+"["); ok {
			return errors.New(f.key + "[" + msg) // kafka.brokers[1]: ...
		}
	}
	f.raw = s
	return nil
}

// keyString formats a key's value as a flag would take it.
func keyString(cfg *Config, key string) string {
	v, err := fieldByKey(reflect.ValueOf(cfg).Elem(), key)
	if err != nil {
		return ""
	}
	if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String {
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}

func newRunCmd(s streams) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run [--config FILE] [flags]",
		Short: "Run the pipeline: consume booking and activity topics, emit alerts",
		Long: `run consumes the booking and activity topics of a Kafka cluster as a consumer
group, keeps every member's state in a local Badger store (state.dir) and
produces dormancy, retention and nudge alerts, member segment changes and dead
letters to the output topics. It runs until SIGINT or SIGTERM, then finishes
its batch, flushes its outbox, commits and exits 0.

Configuration: one YAML file (--config; documented example with every key and
its default: deploy/churnflow.example.yaml) with the sections kafka, state,
http, log and rules (the rules document of docs/rules.md); kafka.tls and
kafka.sasl connect to secured clusters (TLS with a CA and client certificate;
SASL plain, scram-sha-256, scram-sha-512). Precedence, highest first:

  1. flags on the command line (--brokers, --state, ...);
  2. CHURNFLOW_<FLAG>, a flag's variable (CHURNFLOW_BROKERS, CHURNFLOW_STATE,
     CHURNFLOW_MEMORY, CHURNFLOW_API_TOKEN, CHURNFLOW_CONFIG, ...);
  3. CHURNFLOW_<SECTION>_<KEY>, one variable per key of the file: the key's
     path in upper case, dots as underscores (CHURNFLOW_KAFKA_BROKERS,
     CHURNFLOW_STATE_DIR, CHURNFLOW_HTTP_API_TOKEN,
     CHURNFLOW_KAFKA_TOPICS_DEAD_LETTER, CHURNFLOW_RULES_DORMANCY_AFTER);
  4. the file;
  5. the defaults.

Lists take comma-separated values (CHURNFLOW_KAFKA_BROKERS=h1:9092,h2:9092);
lists of mappings, mappings and rules.model take YAML flow syntax
(CHURNFLOW_RULES_DORMANCY_PER_TIER='{gold: 120d}'); mappings are merged into
the file's, lists replace it. --print-config shows the result (secrets masked)
and exits.`,
		Example: `  churnflow run --brokers kafka-1:9092,kafka-2:9092 --state /var/lib/churnflow
  churnflow run --config deploy/churnflow.example.yaml --print-config
  CHURNFLOW_KAFKA_BROKERS=127.0.0.1:9092 CHURNFLOW_LOG_LEVEL=debug churnflow run --config churnflow.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRun(cmd, s, f) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.config, "config", "", "configuration file (YAML; see deploy/churnflow.example.yaml)")
	def := defaultConfig()
	for _, k := range runFlagKeys {
		kf := &keyFlag{key: k.key, typ: k.typ, raw: keyString(&def, k.key)}
		f.keys = append(f.keys, kf)
		fl.Var(kf, k.name, k.usage+" (config "+k.key+")")
		if k.typ == "bool" {
			fl.Lookup(k.name).NoOptDefVal = "true"
		}
	}
	fl.StringVar(&f.model, "model", "", "model file written by churnflow fit (sets rules.model_file; docs/model.md), or a YAML file of BG/NBD parameters r, alpha, a, b, unit (sets rules.model)")
	fl.BoolVar(&f.printConfig, "print-config", false, "print the effective configuration as YAML (secrets masked) and exit")
	return cmd
}

// settings returns the flags that were set, as configuration settings.
// CHURNFLOW_<FLAG> variables arrive here as flags (env.go).
func (f *runFlags) settings(cmd *cobra.Command) ([]setting, error) {
	var out []setting
	for i, k := range runFlagKeys {
		if cmd.Flags().Changed(k.name) {
			out = append(out, scalarSetting("--"+k.name, k.key, f.keys[i].raw))
		}
	}
	if f.model != "" {
		data, err := os.ReadFile(f.model)
		if err != nil {
			return nil, usagef("--model: cannot read %q: %v", f.model, errors.Unwrap(err))
		}
		if isModelFile(data) { // written by churnflow fit: loaded after the configuration
			return append(out, scalarSetting("--model "+f.model, "rules.model_file", f.model)), nil
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
			return nil, usagef("--model %s: not a model (want a model file written by churnflow fit, or YAML with r, alpha, a, b and unit)", f.model)
		}
		out = append(out, setting{source: "--model " + f.model, key: "rules.model", node: doc.Content[0]})
	}
	return out, nil
}

func runRun(cmd *cobra.Command, s streams, f *runFlags) (err error) {
	flags, err := f.settings(cmd)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(f.config, s.getenv, flags)
	if err != nil {
		return err
	}
	if err := applyModelFile(&cfg.Rules, ""); err != nil {
		return err
	}
	if f.printConfig {
		return cfg.writeYAML(s.out)
	}
	log := newLogger(s.err, cfg.Log)
	ctx := cmd.Context()

	if limit, restore := setMemoryLimit(s.getenv, int64(cfg.State.MemoryBudget)); restore != nil {
		defer restore()
		log.Debug().Int64("bytes", limit).Msg("memory limit from state.memory_budget")
	}
	engine, err := operators.NewEngine(cfg.Rules)
	if err != nil {
		return usagef("config rules: %v", err)
	}
	opts := cfg.State.Options()
	opts.Logger = log.With().Str("component", "state").Logger()
	store, err := state.Open(opts)
	if err != nil {
		return explainStateError(cfg.State.Dir, err)
	}
	defer func() {
		if cerr := store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close state %s: %w", cfg.State.Dir, cerr))
		}
	}()

	pcfg := cfg.Kafka.Pipeline()
	if pcfg.Dialer, err = cfg.Kafka.Dialer(); err != nil {
		return usagef("%v", err)
	}
	warnSecurity(log, &cfg.Kafka)
	if err := checkBrokers(ctx, &cfg.Kafka, pcfg.Dialer); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if m := cfg.Rules.Fitted; m != nil {
		log.Info().Str("model", m.Chosen).Str("unit", m.Unit).Time("calibration_end", m.CalibrationEnd).Bool("segments", m.Segments != nil).
			Bool("clv", m.GammaGamma != nil).Msg("fitted model loaded")
	}
	log.Info().Strs("brokers", pcfg.Brokers).Str("group", pcfg.Group).Str("security", cfg.Kafka.security()).Str("state", cfg.State.Dir).
		Str("memory_budget", cfg.State.MemoryBudget.String()).Msg("churnflow run: start")
	deps := pipeline.Deps{Engine: engine, Store: store, Clock: time.Now, Log: log}
	var reg *prometheus.Registry
	if cfg.HTTP.Listen != "" {
		reg, deps.Metrics = httpapi.NewRegistry(store)
	}
	p, err := pipeline.New(pcfg, deps)
	if err != nil {
		return fmt.Errorf("start pipeline: %w", err)
	}
	if cfg.HTTP.Listen != "" {
		if cfg.HTTP.APIToken == "" {
			log.Warn().Msg("http.api_token is empty: /v1/members and /v1/stats answer 403 (metrics and health are served)")
		}
		api, err := httpapi.New(httpapi.Options{Gatherer: reg, Status: p.Status, Store: store, Engine: engine,
			Token: cfg.HTTP.APIToken, Owner: p.PartitionOwner, Log: log.With().Str("component", "http").Logger()})
		if err != nil {
			return err
		}
		ln, err := httpapi.Listen(cfg.HTTP.Listen, api, log)
		if err != nil {
			return fmt.Errorf("http.listen: %w (give a free address with --http, or an empty one to serve nothing)", err)
		}
		defer func() {
			if cerr := ln.Close(); cerr != nil {
				log.Warn().Err(cerr).Msg("http close")
			}
		}()
		sctx, stopSampling := context.WithCancel(ctx)
		defer stopSampling()
		go api.SampleEvery(sctx, time.Minute)
	}
	runErr := p.Run(ctx)
	if runErr != nil && ctx.Err() != nil && errors.Is(runErr, context.Canceled) {
		runErr = nil
	}
	if runErr != nil {
		log.Error().Err(runErr).Msg("churnflow run: stopped on error")
		return explainKafkaError(&cfg.Kafka, runErr)
	}
	log.Info().Msg("churnflow run: stopped")
	return nil
}

// setMemoryLimit sets the Go memory limit the store's budget asks for
// (state.RecommendedMemoryLimit), unless GOMEMLIMIT is in the environment:
// then the operator's choice stands and restore is nil. restore puts the
// previous limit back.
func setMemoryLimit(getenv func(string) (string, bool), budget int64) (limit int64, restore func()) {
	if _, ok := getenv("GOMEMLIMIT"); ok {
		return debug.SetMemoryLimit(-1), nil
	}
	limit = state.RecommendedMemoryLimit(budget)
	prev := debug.SetMemoryLimit(limit)
	return limit, func() { debug.SetMemoryLimit(prev) }
}

// newLogger returns the process logger: JSON lines, or zerolog's console
// format for "console" and for "auto" on a terminal.
func newLogger(w io.Writer, c LogConfig) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	out := w
	if c.Format == "console" || (c.Format == "auto" && isTerminal(w)) {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.DateTime}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// explainStateError says what to do about a store that does not open.
func explainStateError(dir string, err error) error {
	switch {
	case errors.Is(err, state.ErrLocked):
		return fmt.Errorf("state.dir %q is in use by another churnflow process (a state directory belongs to one process): stop it, or give this one its own directory with --state: %w", dir, err)
	case errors.Is(err, state.ErrNotWritable):
		return fmt.Errorf("state.dir %q cannot be created or written: give a writable directory with --state (or CHURNFLOW_STATE_DIR), or fix its permissions: %w", dir, err)
	case errors.Is(err, state.ErrDiskFull):
		return fmt.Errorf("state.dir %q is on a full disk: free space or move the state to a larger disk: %w", dir, err)
	}
	return fmt.Errorf("open state %s: %w (state.dir: set it with --state or CHURNFLOW_STATE_DIR)", dir, err)
}

// brokerCheckTimeout bounds the start-up check that a broker answers.
const brokerCheckTimeout = 10 * time.Second

// checkBrokers dials the bootstrap brokers until one answers, so that a
// wrong address, certificate or password fails at start-up with a message
// saying what to fix. d nil dials plain TCP.
func checkBrokers(ctx context.Context, k *KafkaConfig, d *kafka.Dialer) error {
	if d == nil {
		d = &kafka.Dialer{Timeout: brokerCheckTimeout}
	}
	ctx, cancel := context.WithTimeout(ctx, brokerCheckTimeout)
	defer cancel()
	var errs []string
	var security error
	for _, b := range k.Brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_, err = conn.Brokers()
			conn.Close()
		}
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", b, err))
		if hint, ok := k.explainConnectError(err); ok && security == nil {
			security = fmt.Errorf("kafka.brokers %s: %s: %w", b, hint, err)
		}
	}
	if security != nil {
		return security
	}
	return fmt.Errorf("cannot reach any Kafka broker of kafka.brokers (%s); check the addresses (--brokers, CHURNFLOW_BROKERS or CHURNFLOW_KAFKA_BROKERS) and that Kafka is running (for development: churnflow broker)",
		strings.Join(errs, "; "))
}

// warnSecurity logs the settings that weaken the connection's security.
func warnSecurity(log zerolog.Logger, k *KafkaConfig) {
	if k.TLS.Enabled && k.TLS.InsecureSkipVerify {
		log.Warn().Msg("kafka.tls.insecure_skip_verify: the brokers' certificates are not checked; anyone on the path can read and change the traffic")
	}
	if strings.EqualFold(k.SASL.Mechanism, saslPlain) && !k.TLS.Enabled {
		log.Warn().Msg("kafka.sasl.mechanism plain without kafka.tls: the password crosses the network in clear text")
	}
}

// explainKafkaError adds what to check to a pipeline error caused by the
// network or by TLS or SASL.
func explainKafkaError(k *KafkaConfig, err error) error {
	if hint, ok := k.explainSecurityError(err); ok {
		return fmt.Errorf("pipeline: %s: %w", hint, err)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return fmt.Errorf("pipeline: %w (kafka.brokers %s: check that the brokers are up and reachable)", err, strings.Join(k.Brokers, ","))
	}
	return fmt.Errorf("pipeline: %w", err)
}
