package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/churnflow/churnflow/operators"
)

const exampleConfig = "../../deploy/churnflow.example.yaml"

func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func yamlText(t *testing.T, c Config) string {
	t.Helper()
	var b strings.Builder
	if err := c.writeYAML(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// printConfig runs "run --print-config" and decodes what it prints.
func printConfig(t *testing.T, env map[string]string, args ...string) Config {
	t.Helper()
	code, stdout, stderr := run(t, "", env, append([]string{"run", "--print-config"}, args...)...)
	if code != exitOK {
		t.Fatalf("run --print-config %v: exit %d: %s", args, code, stderr)
	}
	cfg := defaultConfig()
	if err := decodeConfigFile(&cfg, "stdout", []byte(stdout)); err != nil {
		t.Fatalf("printed configuration does not load: %v\n%s", err, stdout)
	}
	return cfg
}

func TestExampleConfigIsTheDefaults(t *testing.T) {
	got, err := loadConfig(exampleConfig, func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	// What the example sets on purpose.
	want.Kafka.Brokers = []string{"kafka-1:9092", "kafka-2:9092", "kafka-3:9092"}
	want.State.Dir = "/var/lib/churnflow"
	if g, w := yamlText(t, got), yamlText(t, want); g != w {
		t.Fatalf("the example differs from the defaults beyond brokers and state.dir:\n--- example\n%s\n--- want\n%s", g, w)
	}
}

func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	text := readFile(t, exampleConfig)
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	has := func(key string) bool {
		n := doc.Content[0]
		for _, part := range strings.Split(key, ".") {
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					n, found = n.Content[i+1], true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	for _, key := range configKeys() {
		if key == "rules.model" { // optional: shown commented out
			if !strings.Contains(text, "# model:") {
				t.Errorf("the example does not show rules.model")
			}
			continue
		}
		if !has(key) {
			t.Errorf("the example does not document %s", key)
		}
	}
}

func TestConfigKeysHaveVariables(t *testing.T) {
	keys := configKeys()
	seen := map[string]string{}
	for _, k := range keys {
		v := keyEnvName(k)
		if other, ok := seen[v]; ok {
			t.Errorf("%s and %s share the variable %s", k, other, v)
		}
		seen[v] = k
	}
	for _, want := range []string{"CHURNFLOW_KAFKA_BROKERS", "CHURNFLOW_KAFKA_TOPICS_DEAD_LETTER", "CHURNFLOW_STATE_DIR",
		"CHURNFLOW_STATE_MEMORY_BUDGET", "CHURNFLOW_HTTP_API_TOKEN", "CHURNFLOW_LOG_FORMAT", "CHURNFLOW_RULES_DORMANCY_AFTER",
		"CHURNFLOW_RULES_VALUE_WEIGHTS_L", "CHURNFLOW_RULES_TIERS", "CHURNFLOW_RULES_MODEL"} {
		if _, ok := seen[want]; !ok {
			t.Errorf("no key reads %s", want)
		}
	}
	// A flag's variable must not collide with a key's variable of another
	// key: CHURNFLOW_STATE (--state) is not a key, nor is CHURNFLOW_HTTP.
	for _, f := range runFlagKeys {
		if k, ok := seen[envName(f.name)]; ok && k != f.key {
			t.Errorf("CHURNFLOW_%s sets --%s and the key %s", envName(f.name), f.name, k)
		}
	}
}

// TestConfigPrecedence checks the one rule: flag > CHURNFLOW_<FLAG> >
// CHURNFLOW_<SECTION>_<KEY> > file > defaults, for keys with and without a
// flag.
func TestConfigPrecedence(t *testing.T) {
	file := writeTemp(t, "c.yaml", `
kafka:
  brokers: file:9092
  group: file-group
  batch_max: 111
state:
  dir: /file/state
  memory_budget: 64MiB
log:
  level: warn
`)
	type layers struct {
		file, keyEnv, flagEnv, flag bool
	}
	for _, c := range []struct {
		name string
		l    layers
		want string
	}{
		{"defaults", layers{}, "default"},
		{"file", layers{file: true}, "file"},
		{"key variable over file", layers{file: true, keyEnv: true}, "keyenv"},
		{"flag variable over key variable", layers{file: true, keyEnv: true, flagEnv: true}, "flagenv"},
		{"flag over everything", layers{file: true, keyEnv: true, flagEnv: true, flag: true}, "flag"},
		{"flag over file", layers{file: true, flag: true}, "flag"},
		{"key variable without file", layers{keyEnv: true}, "keyenv"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{}
			var args []string
			if c.l.file {
				args = append(args, "--config", file)
			}
			if c.l.keyEnv {
				env["CHURNFLOW_KAFKA_BROKERS"] = "keyenv:9092,keyenv2:9092"
				env["CHURNFLOW_KAFKA_GROUP"] = "keyenv-group"
				env["CHURNFLOW_STATE_DIR"] = "/keyenv/state"
				env["CHURNFLOW_STATE_MEMORY_BUDGET"] = "96MiB"
				env["CHURNFLOW_LOG_LEVEL"] = "error"
			}
			if c.l.flagEnv {
				env["CHURNFLOW_BROKERS"] = "flagenv:9092"
				env["CHURNFLOW_GROUP"] = "flagenv-group"
				env["CHURNFLOW_STATE"] = "/flagenv/state"
				env["CHURNFLOW_MEMORY"] = "128MiB"
				env["CHURNFLOW_LOG_LEVEL"] = "error" // no flag of that name: stays the key's
			}
			if c.l.flag {
				args = append(args, "--brokers", "flag:9092", "--group", "flag-group", "--state", "/flag/state", "--memory", "1GiB", "--log-level", "debug")
			}
			got := printConfig(t, env, args...)
			want := map[string][5]string{ // brokers, group, dir, memory, level
				"default": {"127.0.0.1:9092", "churnflow", "churnflow-state", "256MiB", "info"},
				"file":    {"file:9092", "file-group", "/file/state", "64MiB", "warn"},
				"keyenv":  {"keyenv:9092,keyenv2:9092", "keyenv-group", "/keyenv/state", "96MiB", "error"},
				"flagenv": {"flagenv:9092", "flagenv-group", "/flagenv/state", "128MiB", "error"},
				"flag":    {"flag:9092", "flag-group", "/flag/state", "1GiB", "debug"},
			}[c.want]
			gotv := [5]string{strings.Join(got.Kafka.Brokers, ","), got.Kafka.Group, got.State.Dir, got.State.MemoryBudget.String(), got.Log.Level}
			if gotv != want {
				t.Errorf("got %v, want %v", gotv, want)
			}
			// A key without a flag or variable keeps the file's value.
			if wantBatch := map[bool]int{true: 111, false: 1000}[c.l.file]; got.Kafka.BatchMax != wantBatch {
				t.Errorf("kafka.batch_max %d, want %d", got.Kafka.BatchMax, wantBatch)
			}
		})
	}
}

func TestConfigFileFromVariable(t *testing.T) {
	file := writeTemp(t, "c.yaml", "kafka: {group: from-file}\n")
	got := printConfig(t, map[string]string{"CHURNFLOW_CONFIG": file})
	if got.Kafka.Group != "from-file" {
		t.Fatalf("CHURNFLOW_CONFIG was not read: group %q", got.Kafka.Group)
	}
}

func TestConfigStructuredVariables(t *testing.T) {
	got := printConfig(t, map[string]string{
		"CHURNFLOW_RULES_DORMANCY_PER_TIER":  "{gold: 120d}",
		"CHURNFLOW_RULES_TIERS":              "[{name: base}, {name: gold, qualify_km: 50000, qualify_segments: 30}]",
		"CHURNFLOW_RULES_RETENTION_SEGMENTS": "important_retain",
		"CHURNFLOW_RULES_MODEL":              "{r: 0.24, alpha: 4.41, a: 0.79, b: 2.43, unit: week}",
		"CHURNFLOW_KAFKA_TOPICS_DEAD_LETTER": "my.dlq",
		"CHURNFLOW_KAFKA_BROKERS":            "[a:1, b:2]",
		"CHURNFLOW_KAFKA_CREATE_TOPICS":      "true",
		"CHURNFLOW_KAFKA_LATENESS":           "2h",
		"CHURNFLOW_STATE_SYNC_WRITES":        "1",
		"CHURNFLOW_RULES_VALUE_WEIGHTS_L":    "0.5",
	})
	if d := got.Rules.Dormancy.PerTier["gold"]; d.String() != "120d" {
		t.Errorf("per_tier gold %s", d)
	}
	if names := got.Rules.TierNames(); strings.Join(names, ",") != "base,gold" {
		t.Errorf("tiers %v", names)
	}
	if m := got.Rules.Model; m == nil || m.Alpha != 4.41 || m.Unit != "week" {
		t.Errorf("model %+v", m)
	}
	if got.Kafka.Topics.DeadLetter != "my.dlq" || strings.Join(got.Kafka.Brokers, ",") != "a:1,b:2" || !got.Kafka.CreateTopics || got.Kafka.Lateness.String() != "2h" ||
		!got.State.SyncWrites || got.Rules.Value.Weights.L != 0.5 || len(got.Rules.Retention.Segments) != 1 {
		t.Errorf("variables not applied: %+v %+v", got.Kafka, got.State)
	}
}

func TestModelFlag(t *testing.T) {
	model := writeTemp(t, "model.yaml", "r: 0.24\nalpha: 4.41\na: 0.79\nb: 2.43\nunit: day\n")
	got := printConfig(t, nil, "--model", model)
	if m := got.Rules.Model; m == nil || m.R != 0.24 || m.Unit != "day" {
		t.Fatalf("model %+v", m)
	}
	bad := writeTemp(t, "bad.yaml", "r: 0.24\nunit: fortnight\n")
	code, _, stderr := run(t, "", nil, "run", "--print-config", "--model", bad)
	if code != exitUsage || !strings.Contains(stderr, "config rules.model") {
		t.Fatalf("bad model: exit %d %q", code, stderr)
	}
}

// TestRulesSectionReadsLikeLoadConfig: the rules section is the document
// operators.LoadConfig reads, with the same defaults and merging.
func TestRulesSectionReadsLikeLoadConfig(t *testing.T) {
	rules := `tiers:
  - {name: base}
  - {name: gold, qualify_km: 50000, qualify_segments: 30}
dormancy:
  after: 60d
  per_tier: {gold: 120d}
retention:
  min_tier: gold
  cooldown: 14d
nudges:
  disabled: [cross_sell_nudge]
actions:
  dormancy: call them
`
	want, err := operators.LoadConfig(strings.NewReader(rules))
	if err != nil {
		t.Fatal(err)
	}
	indented := "rules:\n  " + strings.ReplaceAll(strings.TrimSpace(rules), "\n", "\n  ") + "\n"
	got, err := loadConfig(writeTemp(t, "c.yaml", indented), func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Rules, want) {
		t.Fatalf("rules section:\n%+v\nLoadConfig:\n%+v", got.Rules, want)
	}
}

func TestPrintConfigRoundTrips(t *testing.T) {
	env := map[string]string{"CHURNFLOW_KAFKA_BATCH_WAIT": "20ms", "CHURNFLOW_RULES_DORMANCY_PER_TIER": "{platinum: 45d}"}
	code, stdout, stderr := run(t, "", env, "run", "--print-config", "--config", exampleConfig)
	if code != exitOK {
		t.Fatal(stderr)
	}
	again, err := loadConfig(writeTemp(t, "printed.yaml", stdout), func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatalf("printed configuration does not load: %v", err)
	}
	if yamlText(t, again) != stdout {
		t.Fatalf("printed configuration does not load back to itself:\n%s\n---\n%s", stdout, yamlText(t, again))
	}
}

// checkMasked runs "run --print-config" with env and args, which set a
// secret containing "s3cret", and checks that key is printed masked and
// the secret nowhere.
func checkMasked(t *testing.T, env map[string]string, args []string, key string) {
	t.Helper()
	code, stdout, stderr := run(t, "", env, append([]string{"run", "--print-config"}, args...)...)
	if code != exitOK {
		t.Fatalf("%v %v: exit %d: %s", env, args, code, stderr)
	}
	if strings.Contains(stdout+stderr, "s3cret") {
		t.Errorf("%v %v: the secret is printed:\n%s", env, args, stdout)
	}
	if !strings.Contains(stdout, key+": '*****'") {
		t.Errorf("%v %v: no masked %s in:\n%s", env, args, key, stdout)
	}
}

func TestPrintConfigMasksSecrets(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
	}{
		{nil, []string{"--api-token", "s3cret-flag"}},
		{map[string]string{"CHURNFLOW_API_TOKEN": "s3cret-flagenv"}, nil},
		{map[string]string{"CHURNFLOW_HTTP_API_TOKEN": "s3cret-keyenv"}, nil},
		{map[string]string{"CHURNFLOW_HTTP_API_TOKEN": "{s3cret: [x]}"}, nil}, // a token is text, never YAML
		{nil, []string{"--config", writeTemp(t, "c.yaml", "http: {api_token: s3cret-file}\n")}},
	} {
		checkMasked(t, c.env, c.args, "api_token")
	}
	// Unset stays visibly unset.
	_, stdout, _ := run(t, "", nil, "run", "--print-config")
	if !strings.Contains(stdout, `api_token: ""`) {
		t.Errorf("an unset token should print as empty:\n%s", stdout)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, c := range []struct {
		name string
		file string
		env  map[string]string
		args []string
		want string
	}{
		{"empty brokers variable", "", map[string]string{"CHURNFLOW_KAFKA_BROKERS": ""}, nil,
			"config kafka.brokers: empty; give host:port[,host:port...] (set by CHURNFLOW_KAFKA_BROKERS)"},
		{"empty brokers file", "kafka: {brokers: []}", nil, nil, "churnflow: config kafka.brokers: empty; give host:port[,host:port...]\n"},
		{"broker without port", "kafka: {brokers: [ok:9092, kafka-2]}", nil, nil,
			`config kafka.brokers[1]: "kafka-2" is not host:port`},
		{"size in file", "state:\n  memory_budget: lots\n", nil, nil,
			`config state.memory_budget: "lots" is not a size (examples: 256MiB, 1GiB`},
		{"size in file has line", "state:\n  memory_budget: lots\n", nil, nil, "line 2)"},
		{"small budget", "state: {memory_budget: 8MiB}", nil, nil, "config state.memory_budget: 8MiB is below the minimum of 16MiB"},
		{"size flag", "", nil, []string{"--memory", "lots"}, `--memory: "lots" is not a size`},
		{"size flag variable", "", map[string]string{"CHURNFLOW_MEMORY": "lots"}, nil, `CHURNFLOW_MEMORY: "lots" is not a size`},
		{"size key variable", "", map[string]string{"CHURNFLOW_STATE_MEMORY_BUDGET": "lots"}, nil,
			`CHURNFLOW_STATE_MEMORY_BUDGET: "lots" is not a size (examples: 256MiB, 1GiB, 500MB) (config state.memory_budget)`},
		{"whole number", "", map[string]string{"CHURNFLOW_KAFKA_BATCH_MAX": "many"}, nil,
			`CHURNFLOW_KAFKA_BATCH_MAX: "many" is not a whole number (config kafka.batch_max)`},
		{"batch max zero", "kafka: {batch_max: 0}", nil, nil, "config kafka.batch_max: 0; give at least 1"},
		{"batch max above pipeline limit", "kafka: {batch_max: 1000000}", nil, nil, "config kafka: pipeline config BatchMax"},
		{"duration", "kafka: {lateness: soon}", nil, nil, `config kafka.lateness: "soon" is not a duration`},
		{"negative duration", "kafka: {batch_wait: -5ms}", nil, nil, "config kafka.batch_wait: -5ms; give a duration positive"},
		{"heartbeat", "kafka: {session_timeout: 5s, heartbeat_interval: 5s}", nil, nil, "config kafka.heartbeat_interval: 5s is not below kafka.session_timeout"},
		{"bool", "kafka: {create_topics: maybe}", nil, nil, `config kafka.create_topics: "maybe" is not true or false`},
		{"unknown key", "kafka: {brokrs: [a:1]}", nil, nil, "config kafka.brokrs: unknown key (keys of kafka: brokers, group, topics"},
		{"unknown section", "kafak: {}", nil, nil, "config kafak: unknown key (keys of the top level: kafka, state, http, log, rules)"},
		{"empty topic", "kafka: {topics: {dormancy: ''}}", nil, nil, "config kafka.topics.dormancy: empty"},
		{"same topic twice", "kafka: {topics: {nudges: churnflow.dlq}}", nil, nil, `config kafka.topics.dead_letter: "churnflow.dlq" is also topics.nudges`},
		{"empty state dir", "", nil, []string{"--state", ""}, "--state: empty; give the directory"},
		{"empty state dir variable", "", map[string]string{"CHURNFLOW_STATE_DIR": " "}, nil, "config state.dir: empty; give the directory for member state (--state DIR) (set by CHURNFLOW_STATE_DIR)"},
		{"broker flag without port", "", nil, []string{"--brokers", "ok:1,kafka-2"}, `--brokers: kafka.brokers[1]: "kafka-2" is not host:port`},
		{"broker variable without port", "", map[string]string{"CHURNFLOW_KAFKA_BROKERS": "kafka-2"}, nil, `config kafka.brokers[0]: "kafka-2" is not host:port (example: kafka-1:9092) (set by CHURNFLOW_KAFKA_BROKERS)`},
		{"rules variable", "", map[string]string{"CHURNFLOW_RULES_RETENTION_MIN_TIER": "diamond"}, nil, `config rules.retention.min_tier: no such tier "diamond" (tiers: base, silver, gold, platinum) (set by CHURNFLOW_RULES_RETENTION_MIN_TIER)`},
		{"small budget flag", "", nil, []string{"--memory", "1MiB"}, "--memory: 1MiB is below the minimum of 16MiB"},
		{"empty brokers flag variable", "", map[string]string{"CHURNFLOW_BROKERS": ","}, nil, "CHURNFLOW_BROKERS: empty; give host:port"},
		{"log format", "log: {format: xml}", nil, nil, `config log.format: "xml" is not one of json, console, auto`},
		{"log level flag", "", nil, []string{"--log-level", "loud"}, `--log-level: "loud" is not one of trace, debug, info, warn, error`},
		{"http listen", "http: {listen: localhost}", nil, nil, `config http.listen: "localhost" is not host:port`},
		{"rules value", "rules: {dormancy: {after: 10m}}", nil, nil, "config rules.dormancy.after: must be at least 1h"},
		{"rules unknown key", "rules: {tiers: [{name: base, bogus: 1}]}", nil, nil, "config rules.tiers[0].bogus: unknown key"},
		{"rules wrong shape", "rules: {tiers: base}", nil, nil, "config rules.tiers: want a list, not a single value"},
		{"tiers variable not YAML", "", map[string]string{"CHURNFLOW_RULES_TIERS": "base,gold"}, nil, "CHURNFLOW_RULES_TIERS: want a list, not a single value (config rules.tiers)"},
		{"not YAML", "kafka: [", nil, nil, "config file"},
		{"two documents", "kafka: {}\n---\nstate: {}\n", nil, nil, "more than one YAML document"},
		{"missing file", "-", nil, []string{"--config", "/nonexistent/churnflow.yaml"}, `--config: file "/nonexistent/churnflow.yaml" does not exist`},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"run", "--print-config"}, c.args...)
			if c.file != "" && c.file != "-" {
				args = append(args, "--config", writeTemp(t, "c.yaml", c.file))
			}
			code, stdout, stderr := run(t, "", c.env, args...)
			if code != exitUsage || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, exitUsage, c.want)
			}
			if stdout != "" {
				t.Errorf("printed a configuration despite the error: %s", stdout)
			}
		})
	}
}
