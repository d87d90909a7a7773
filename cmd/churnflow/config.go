package main

// The configuration of "churnflow run" (and of the commands that run the
// pipeline the same way): one YAML file whose layout is Config, every key
// overridable from the environment and by flags.
//
// Layers, lowest first; a later layer wins over an earlier one:
//
//  1. defaults (defaultConfig: the packages' DefaultConfig/DefaultOptions);
//  2. the YAML file (--config FILE, or CHURNFLOW_CONFIG);
//  3. CHURNFLOW_<SECTION>_<KEY> variables, one per key, named by the key's
//     path in upper case with dots as underscores (kafka.brokers:
//     CHURNFLOW_KAFKA_BROKERS; kafka.topics.dead_letter:
//     CHURNFLOW_KAFKA_TOPICS_DEAD_LETTER; rules.dormancy.after:
//     CHURNFLOW_RULES_DORMANCY_AFTER);
//  4. the command's flags; a flag not on the command line is read from
//     CHURNFLOW_<FLAG> (env.go), so CHURNFLOW_BROKERS works like --brokers
//     and wins over CHURNFLOW_KAFKA_BROKERS, and a flag on the command line
//     wins over both.
//
// So: flags > environment > file > defaults, and within the environment the
// flag's variable is the more specific one. Every layer goes through the
// same decoder (decodeValue), so a value means the same thing and is
// rejected with the same message wherever it comes from, and the message
// names the key (and the variable, flag or file line it came from).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// Config mirrors the configuration file. Secrets carry the tag
// secret:"true": --print-config masks them.
type Config struct {
	Kafka KafkaConfig `yaml:"kafka"`
	State StateConfig `yaml:"state"`
	HTTP  HTTPConfig  `yaml:"http"`
	Log   LogConfig   `yaml:"log"`
	// Rules is the rules document operators.LoadConfig reads (docs/rules.md).
	Rules operators.Config `yaml:"rules"`
}

// KafkaConfig is the "kafka" section: the cluster, topics and the
// pipeline's tuning (pipeline.Config).
type KafkaConfig struct {
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// Group is the consumer group id: instances with the same group share
	// the partitions.
	Group  string          `yaml:"group"`
	Topics pipeline.Topics `yaml:"topics"`
	// CreateTopics creates missing output topics at start-up, with the
	// input topics' partition count.
	CreateTopics bool `yaml:"create_topics"`
	// BatchMax and BatchWait bound a partition worker's batch: at most
	// BatchMax records, waiting at most BatchWait for more.
	BatchMax  int                `yaml:"batch_max"`
	BatchWait operators.Duration `yaml:"batch_wait"`
	// Lateness is the allowed lateness: a partition's watermark is the
	// largest event time seen minus Lateness.
	Lateness operators.Duration `yaml:"lateness"`
	// IdleAfter is how long a caught-up partition waits without records
	// before its watermark follows the wall clock.
	IdleAfter operators.Duration `yaml:"idle_after"`
	// MaxFuture rejects events whose occurred_at is further ahead of the
	// wall clock (dead letter "future").
	MaxFuture operators.Duration `yaml:"max_future"`
	// MaxEventBytes rejects larger messages (dead letter "oversize").
	MaxEventBytes sizeBytes `yaml:"max_event_bytes"`
	// Consumer group timing (kafka-go's defaults: 30s, 3s, 30s).
	SessionTimeout    operators.Duration `yaml:"session_timeout"`
	HeartbeatInterval operators.Duration `yaml:"heartbeat_interval"`
	RebalanceTimeout  operators.Duration `yaml:"rebalance_timeout"`
	// ProduceBatchTimeout is how long the outbox producer waits to fill a
	// batch.
	ProduceBatchTimeout operators.Duration `yaml:"produce_batch_timeout"`
	// TLS and SASL secure the connections to the brokers (security.go).
	TLS  TLSConfig  `yaml:"tls"`
	SASL SASLConfig `yaml:"sasl"`
}

// StateConfig is the "state" section (state.Options).
type StateConfig struct {
	// Dir is the Badger state directory; one process at a time.
	Dir string `yaml:"dir"`
	// MemoryBudget bounds the store's memory (memtables, caches, member
	// cache); the process's GOMEMLIMIT is derived from it.
	MemoryBudget sizeBytes `yaml:"memory_budget"`
	// SyncWrites fsyncs every commit (survives power loss).
	SyncWrites bool `yaml:"sync_writes"`
	// GCInterval is how often Badger's value log is collected; 0 never.
	GCInterval operators.Duration `yaml:"gc_interval"`
	// DedupTTL is how long an event_id is remembered.
	DedupTTL operators.Duration `yaml:"dedup_ttl"`
}

// HTTPConfig is the "http" section: metrics, health and the member API.
type HTTPConfig struct {
	// Listen is the address to serve on; empty serves nothing.
	Listen string `yaml:"listen"`
	// APIToken is the bearer token of /v1/*.
	APIToken string `yaml:"api_token" secret:"true"`
}

// LogConfig is the "log" section.
type LogConfig struct {
	// Level is trace, debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is json, console, or auto (console when standard error is a
	// terminal, else json).
	Format string `yaml:"format"`
}

// Defaults of the settings no package owns.
const (
	defaultBrokers   = "127.0.0.1:9092"
	defaultGroup     = "churnflow"
	defaultStateDir  = "churnflow-state"
	defaultHTTP      = "127.0.0.1:8080"
	defaultLogLevel  = "info"
	defaultLogFormat = "auto"
	secretMask       = "*****"
)

var (
	logLevels  = []string{"trace", "debug", "info", "warn", "error"}
	logFormats = []string{"json", "console", "auto"}
)

// defaultConfig returns the defaults: the packages' own for their sections.
func defaultConfig() Config {
	so := state.DefaultOptions(defaultStateDir)
	return Config{
		Kafka: kafkaFromPipeline(pipeline.DefaultConfig()),
		State: StateConfig{
			Dir:          so.Dir,
			MemoryBudget: sizeBytes(so.MemoryBudget),
			SyncWrites:   so.SyncWrites,
			GCInterval:   operators.Duration(so.GCInterval),
			DedupTTL:     operators.Duration(so.DedupTTL),
		},
		HTTP:  HTTPConfig{Listen: defaultHTTP},
		Log:   LogConfig{Level: defaultLogLevel, Format: defaultLogFormat},
		Rules: operators.DefaultConfig(),
	}
}

// kafkaFromPipeline is the kafka section of a pipeline configuration; an
// empty broker list or group gets churnflow's development defaults.
func kafkaFromPipeline(c pipeline.Config) KafkaConfig {
	k := KafkaConfig{
		Brokers:             append([]string(nil), c.Brokers...),
		Group:               c.Group,
		Topics:              c.Topics,
		CreateTopics:        c.CreateTopics,
		BatchMax:            c.BatchMax,
		BatchWait:           operators.Duration(c.BatchWait),
		Lateness:            operators.Duration(c.Lateness),
		IdleAfter:           operators.Duration(c.IdleAfter),
		MaxFuture:           operators.Duration(c.MaxFuture),
		MaxEventBytes:       sizeBytes(c.MaxEventBytes),
		SessionTimeout:      operators.Duration(c.SessionTimeout),
		HeartbeatInterval:   operators.Duration(c.HeartbeatInterval),
		RebalanceTimeout:    operators.Duration(c.RebalanceTimeout),
		ProduceBatchTimeout: operators.Duration(c.ProduceBatchTimeout),
	}
	if len(k.Brokers) == 0 {
		k.Brokers = []string{defaultBrokers}
	}
	if k.Group == "" {
		k.Group = defaultGroup
	}
	return k
}

// Pipeline returns the pipeline's configuration, without its Dialer (which
// reads the TLS files: Dialer).
func (k *KafkaConfig) Pipeline() pipeline.Config {
	c := pipeline.DefaultConfig()
	c.Brokers = append([]string(nil), k.Brokers...)
	c.Group = k.Group
	c.Topics = k.Topics
	c.CreateTopics = k.CreateTopics
	c.BatchMax = k.BatchMax
	c.BatchWait = time.Duration(k.BatchWait)
	c.Lateness = time.Duration(k.Lateness)
	c.IdleAfter = time.Duration(k.IdleAfter)
	c.MaxFuture = time.Duration(k.MaxFuture)
	c.MaxEventBytes = int(k.MaxEventBytes)
	c.SessionTimeout = time.Duration(k.SessionTimeout)
	c.HeartbeatInterval = time.Duration(k.HeartbeatInterval)
	c.RebalanceTimeout = time.Duration(k.RebalanceTimeout)
	c.ProduceBatchTimeout = time.Duration(k.ProduceBatchTimeout)
	return c
}

// Options returns the state store's options (without a logger).
func (s *StateConfig) Options() state.Options {
	o := state.DefaultOptions(s.Dir)
	o.MemoryBudget = int64(s.MemoryBudget)
	o.SyncWrites = s.SyncWrites
	o.GCInterval = time.Duration(s.GCInterval)
	o.DedupTTL = time.Duration(s.DedupTTL)
	return o
}

// sizeBytes is a byte count written as 256MiB, 1GiB, 500MB or 1048576.
type sizeBytes int64

func (z sizeBytes) String() string { return formatSize(int64(z)) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (z *sizeBytes) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseSize(n.Value)
	if err != nil {
		return err
	}
	*z = sizeBytes(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (z sizeBytes) MarshalYAML() (any, error) { return z.String(), nil }

// setting is one value from the environment or a flag, for a key.
type setting struct {
	source string     // what to name in errors: "--memory", "CHURNFLOW_STATE_DIR"
	key    string     // "state.memory_budget"
	node   *yaml.Node // the value
}

// scalarSetting is a setting from a string (a flag or a variable). Lists
// take comma-separated values; lists, mappings and the model also take a
// YAML flow value ("[a, b]", "{gold: 120d}").
func scalarSetting(source, key, value string) setting {
	return setting{source: source, key: key, node: &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}}
}

// flowValue reads a string given for a list, a mapping or the model as YAML
// flow syntax when it looks like it ("[a, b]", "{gold: 120d}"); a string
// key keeps the text as it is (a token may start with a bracket).
func flowValue(v reflect.Value, n *yaml.Node) *yaml.Node {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" || isUnmarshaler(v.Type()) {
		return n
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Struct:
	default:
		return n
	}
	t := strings.TrimSpace(n.Value)
	if !strings.HasPrefix(t, "[") && !strings.HasPrefix(t, "{") {
		return n
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(t), &doc); err != nil || len(doc.Content) != 1 {
		return n
	}
	return doc.Content[0]
}

// loadConfig builds the effective configuration: the defaults, the file at
// path (none if ""), the CHURNFLOW_<SECTION>_<KEY> variables, then flags
// (in order; later ones win). The result is validated.
func loadConfig(path string, getenv func(string) (string, bool), flags []setting) (Config, error) {
	cfg := defaultConfig()
	if path != "" {
		data, err := readConfigFile(path)
		if err != nil {
			return cfg, err
		}
		if err := decodeConfigFile(&cfg, path, data); err != nil {
			return cfg, err
		}
	}
	sources := map[string]string{} // key: the variable or flag that set it last
	for _, s := range append(configEnv(getenv), flags...) {
		if err := applySetting(&cfg, s); err != nil {
			return cfg, err
		}
		sources[s.key] = s.source
	}
	if err := cfg.Validate(); err != nil {
		// Name where a wrong value came from when it was not the file.
		msg := err.Error()
		best := ""
		for key := range sources {
			if rest, ok := strings.CutPrefix(msg, "config "+key); ok && (strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, "[") || strings.HasPrefix(rest, ".")) && len(key) > len(best) {
				best = key
			}
		}
		if best != "" {
			return cfg, usagef("%v (set by %s)", err, sources[best])
		}
		return cfg, usagef("%v", err)
	}
	return cfg, nil
}

func readConfigFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, usagef("--config: file %q does not exist", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, usagef("--config: file %q is not readable (permission denied)", path)
	case err != nil:
		if st, serr := os.Stat(path); serr == nil && st.IsDir() {
			return nil, usagef("--config: %q is a directory, not a file", path)
		}
		return nil, fmt.Errorf("--config: %w", err)
	}
	return data, nil
}

// decodeConfigFile reads a YAML document over cfg: absent keys keep their
// values, unknown keys are an error, lists are replaced and mappings merged
// (as operators.LoadConfig reads the rules).
func decodeConfigFile(cfg *Config, path string, data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return usagef("config file %s: %v", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return usagef("config file %s: holds more than one YAML document", path)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	if err := decodeValue(reflect.ValueOf(cfg).Elem(), doc.Content[0], ""); err != nil {
		var ke *keyError
		if errors.As(err, &ke) {
			return usagef("%v (%s line %d)", ke, path, ke.line)
		}
		return usagef("config file %s: %v", path, err)
	}
	return nil
}

// configEnv returns the CHURNFLOW_<SECTION>_<KEY> variables that are set.
func configEnv(getenv func(string) (string, bool)) []setting {
	var out []setting
	for _, key := range configKeys() {
		name := keyEnvName(key)
		if v, ok := getenv(name); ok {
			out = append(out, scalarSetting(name, key, v))
		}
	}
	return out
}

// keyEnvName is the variable of a configuration key.
func keyEnvName(key string) string {
	return envPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// applySetting decodes one setting into cfg. The error names the source
// and the key.
func applySetting(cfg *Config, s setting) error {
	v, err := fieldByKey(reflect.ValueOf(cfg).Elem(), s.key)
	if err != nil {
		return err
	}
	if err := decodeValue(v, flowValue(v, s.node), s.key); err != nil {
		var ke *keyError
		if errors.As(err, &ke) {
			return usagef("%s: %v (config %s)", s.source, ke.err, ke.key)
		}
		return usagef("%s: %v", s.source, err)
	}
	return nil
}

// configKeys lists the keys that take a value: every field of the
// sections' structs, walked down to values (lists, mappings and the rules
// model are one key each).
func configKeys() []string {
	var keys []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			key := joinKey(prefix, name)
			if f.Type.Kind() == reflect.Struct && !isUnmarshaler(f.Type) {
				walk(f.Type, key)
				continue
			}
			keys = append(keys, key)
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return keys
}

// fieldByKey finds the field of a dotted key.
func fieldByKey(v reflect.Value, key string) (reflect.Value, error) {
	for _, part := range strings.Split(key, ".") {
		if v.Kind() != reflect.Struct {
			return v, fmt.Errorf("config %s: no such key", key)
		}
		idx, ok := yamlFields(v.Type())[part]
		if !ok {
			return v, fmt.Errorf("config %s: no such key", key)
		}
		v = v.Field(idx)
	}
	return v, nil
}

// keyError is a value that is wrong for its key.
type keyError struct {
	key  string
	line int
	err  error
}

func (e *keyError) Error() string { return "config " + e.key + ": " + e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

func badKey(key string, n *yaml.Node, format string, args ...any) error {
	return &keyError{key: key, line: n.Line, err: fmt.Errorf(format, args...)}
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func isUnmarshaler(t reflect.Type) bool { return reflect.PointerTo(t).Implements(unmarshalerType) }

// decodeValue decodes n into v (addressable), naming key in errors. A null
// keeps v's value. Structs take only their own keys; lists are replaced,
// a plain string list also takes "a,b,c"; mappings are merged.
func decodeValue(v reflect.Value, n *yaml.Node, key string) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if isUnmarshaler(v.Type()) {
		if n.Kind != yaml.ScalarNode {
			return badKey(key, n, "want a single value, not a %s", nodeKind(n))
		}
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			return &keyError{key: key, line: n.Line, err: err}
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		fields := yamlFields(v.Type())
		if n.Kind != yaml.MappingNode {
			return badKey(key, n, "want a mapping with the keys %s, not a %s", strings.Join(fieldNames(v.Type()), ", "), nodeKind(n))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			idx, ok := fields[k]
			if !ok {
				where := "the top level"
				if key != "" {
					where = key
				}
				return badKey(joinKey(key, k), n.Content[i], "unknown key (keys of %s: %s)", where, strings.Join(fieldNames(v.Type()), ", "))
			}
			if err := decodeValue(v.Field(idx), n.Content[i+1], joinKey(key, k)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeValue(v.Elem(), n, key)
	case reflect.Slice:
		var items []*yaml.Node
		switch {
		case n.Kind == yaml.SequenceNode:
			items = n.Content
		case n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String:
			for _, p := range strings.Split(n.Value, ",") {
				if p = strings.TrimSpace(p); p != "" {
					items = append(items, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p, Line: n.Line})
				}
			}
		default:
			return badKey(key, n, "want a list, not a %s", nodeKind(n))
		}
		out := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			if err := decodeValue(out.Index(i), item, fmt.Sprintf("%s[%d]", key, i)); err != nil {
				return err
			}
		}
		v.Set(out)
		return nil
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return badKey(key, n, "want a mapping, not a %s", nodeKind(n))
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			e := reflect.New(v.Type().Elem()).Elem()
			if old := v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())); old.IsValid() {
				e.Set(old)
			}
			if err := decodeValue(e, n.Content[i+1], joinKey(key, k)); err != nil {
				return err
			}
			v.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), e)
		}
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return badKey(key, n, "want a single value, not a %s", nodeKind(n))
	}
	s := strings.TrimSpace(n.Value)
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return badKey(key, n, "%q is not true or false", n.Value)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil || v.OverflowInt(i) {
			return badKey(key, n, "%q is not a whole number", n.Value)
		}
		v.SetInt(i)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return badKey(key, n, "%q is not a number", n.Value)
		}
		v.SetFloat(f)
	default:
		return badKey(key, n, "cannot be set (type %s)", v.Type())
	}
	return nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "single value"
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			m[name] = i
		}
	}
	return m
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// Validate reports the first wrong setting, naming its key and what to
// give instead. It checks with the packages' own Validate where they have
// one.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("config %s: %s", key, fmt.Sprintf(format, args...))
	}
	k := &c.Kafka
	if len(k.Brokers) == 0 {
		return bad("kafka.brokers", "empty; give host:port[,host:port...]")
	}
	for i, b := range k.Brokers {
		host, port, err := net.SplitHostPort(b)
		if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
			return bad(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port (example: kafka-1:9092)", b)
		}
	}
	if strings.TrimSpace(k.Group) == "" {
		return bad("kafka.group", "empty; give the consumer group id, e.g. churnflow")
	}
	if err := k.Topics.Validate(); err != nil {
		return fmt.Errorf("config kafka.%w", err)
	}
	if k.BatchMax < 1 {
		return bad("kafka.batch_max", "%d; give at least 1 (records per batch)", k.BatchMax)
	}
	for _, d := range []struct {
		key  string
		v    operators.Duration
		zero bool // 0 allowed
	}{
		{"kafka.batch_wait", k.BatchWait, false},
		{"kafka.lateness", k.Lateness, true},
		{"kafka.idle_after", k.IdleAfter, false},
		{"kafka.max_future", k.MaxFuture, false},
		{"kafka.session_timeout", k.SessionTimeout, false},
		{"kafka.heartbeat_interval", k.HeartbeatInterval, false},
		{"kafka.rebalance_timeout", k.RebalanceTimeout, false},
		{"kafka.produce_batch_timeout", k.ProduceBatchTimeout, false},
		{"state.gc_interval", c.State.GCInterval, true},
	} {
		if d.v < 0 || (!d.zero && d.v == 0) {
			want := "positive"
			if d.zero {
				want = "0 or more"
			}
			return bad(d.key, "%s; give a duration %s (examples: 5ms, 30s, 1h, 7d)", d.v, want)
		}
	}
	if k.HeartbeatInterval >= k.SessionTimeout {
		return bad("kafka.heartbeat_interval", "%s is not below kafka.session_timeout (%s); a third of it or less is usual", k.HeartbeatInterval, k.SessionTimeout)
	}
	if k.MaxEventBytes < 1 {
		return bad("kafka.max_event_bytes", "give a positive size (example: 64KiB)")
	}
	pc := k.Pipeline()
	if err := pc.Validate(); err != nil {
		return fmt.Errorf("config kafka: %w", err)
	}
	// Reads the TLS files, so that a missing or wrong one fails at start-up.
	if _, err := k.Dialer(); err != nil {
		return err
	}

	s := &c.State
	if strings.TrimSpace(s.Dir) == "" {
		return bad("state.dir", "empty; give the directory for member state (--state DIR)")
	}
	if s.MemoryBudget < 16<<20 {
		return bad("state.memory_budget", "%s is below the minimum of 16MiB (default 256MiB)", s.MemoryBudget)
	}
	if time.Duration(s.DedupTTL) < time.Second {
		return bad("state.dedup_ttl", "%s; give at least 1s (default 7d)", s.DedupTTL)
	}
	so := s.Options()
	if err := so.Validate(); err != nil {
		return fmt.Errorf("config state: %w", err)
	}

	if c.HTTP.Listen != "" {
		if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || port == "" {
			return bad("http.listen", "%q is not host:port (example: 127.0.0.1:8080; empty serves nothing)", c.HTTP.Listen)
		}
	}
	if !oneOf(c.Log.Level, logLevels) {
		return bad("log.level", "%q is not one of %s", c.Log.Level, strings.Join(logLevels, ", "))
	}
	if !oneOf(c.Log.Format, logFormats) {
		return bad("log.format", "%q is not one of %s", c.Log.Format, strings.Join(logFormats, ", "))
	}
	if err := c.Rules.Validate(); err != nil {
		// operators names its keys from the rules document's root.
		if rest, ok := strings.CutPrefix(err.Error(), "config "); ok {
			return errors.New("config rules." + rest)
		}
		return fmt.Errorf("config rules: %w", err)
	}
	return nil
}

func oneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// masked returns a copy of c with every non-empty secret replaced by
// secretMask.
func (c Config) masked() Config {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		if v.Kind() != reflect.Struct {
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			fv := v.Field(i)
			if f.Tag.Get("secret") == "true" && fv.Kind() == reflect.String && fv.String() != "" {
				fv.SetString(secretMask)
				continue
			}
			walk(fv)
		}
	}
	walk(reflect.ValueOf(&c).Elem())
	return c
}

// writeYAML writes c as YAML, secrets masked.
func (c Config) writeYAML(w io.Writer) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(c.masked()); err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	return enc.Close()
}
