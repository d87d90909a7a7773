package deploy_test

// Checks of the deployment files that need neither a Docker engine nor a
// Kubernetes cluster (docs/operations.md, "Deploying"):
//
//   - every YAML file under deploy/ parses (all its documents);
//   - the Dockerfile is multi-stage, builds a static binary, runs as a
//     non-root user, adds no remote URL, and copies only files the build
//     context (.dockerignore) keeps;
//   - the compose file has its services, the files it mounts exist, its
//     commands and topics agree with churnflow's configuration, and every
//     "$" is either escaped or a ${VAR:-default};
//   - every churnflow configuration file shipped here (the image's, the
//     compose stack's, the Kubernetes ConfigMap's) is accepted by
//     "churnflow run --print-config" with the environment it is deployed
//     with, and every CHURNFLOW_* variable set names a real key;
//   - every metric name in the dashboard and in the alerting rules is one
//     "churnflow run" serves (knownMetrics: httpapi.NewRegistry's, with
//     pipeline.MetricNames()) or Prometheus' "up";
//   - the dashboard parses, every panel has a datasource and queries, and
//     it shows every churnflow_* metric churnflow registers;
//   - the Kubernetes manifests have the expected kinds, probes on /readyz
//     and /healthz, a non-root read-only container, a memory limit that
//     fits state.memory_budget, and references that resolve;
//   - promtool checks the rules, runs their unit tests
//     (prometheus/churnflow-rules.test.yml), checks prometheus.yml, the
//     Kubernetes scrape example prometheus-k8s.yml and every dashboard
//     query. Without promtool these skip, except under CI=true, where they
//     fail (scripts/test.sh installs Debian's prometheus package, which
//     has it);
//   - kubectl's built-in kustomize renders deploy/k8s (skipped without
//     kubectl).

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/churnflow/churnflow/internal/httpapi"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// Paths, relative to this package's directory (deploy/), where go test runs.
const (
	repoRoot          = ".."
	composeFile       = "docker-compose.yml"
	rulesFile         = "prometheus/churnflow-rules.yml"
	rulesTestFile     = "prometheus/churnflow-rules.test.yml"
	promConfigFile    = "prometheus/prometheus.yml"
	promK8sConfigFile = "prometheus/prometheus-k8s.yml"
	dashboardFile     = "grafana/churnflow-dashboard.json"
	k8sDir            = "k8s"
	imageConfig       = "docker/churnflow.yaml"

	stateDir     = "/var/lib/churnflow"
	httpPort     = "8080"
	nonRootUID   = 65532
	inputTopics  = 2
	scrapeJob    = "churnflow"
	sizeMiB      = int64(1) << 20
	mmapHeadroom = 256 * sizeMiB // memory limit above GOMEMLIMIT: mapped files, stacks
)

// allowedMetrics are the metric names the dashboard and the rules may use
// besides those of the registry "churnflow run" serves on /metrics
// (httpapi.NewRegistry: the pipeline's, the state store's, build info, the
// Go and process collectors): only Prometheus' own "up", one series per
// scrape target.
var allowedMetrics = []string{"up"}

// ---------------------------------------------------------------------------
// YAML

func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, file string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := decodeYAMLDocs(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return docs
}

func decodeYAMLDocs(data []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for i := 0; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

func TestYAMLParses(t *testing.T) {
	files := yamlFiles(t)
	if len(files) < 10 {
		t.Fatalf("found only %d YAML files under deploy/: %v", len(files), files)
	}
	for _, f := range files {
		if docs := yamlDocs(t, f); len(docs) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
	}
}

// ---------------------------------------------------------------------------
// Generic access to decoded YAML and JSON

func m(v any) map[string]any {
	r, _ := v.(map[string]any)
	return r
}

func l(v any) []any {
	r, _ := v.([]any)
	return r
}

func s(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

// dig follows keys through nested mappings.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		v = m(v)[k]
	}
	return v
}

func strs(v any) []string {
	var out []string
	for _, x := range l(v) {
		out = append(out, s(x))
	}
	return out
}

// ---------------------------------------------------------------------------
// Dockerfile and .dockerignore

type instruction struct {
	cmd  string // upper case
	args string
	line int
}

// parseDockerfile returns the instructions, continuation lines joined and
// comments dropped.
func parseDockerfile(t *testing.T, file string) []instruction {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: the last instruction ends with a line continuation", file)
	}
	return out
}

// execForm decodes a JSON array argument (ENTRYPOINT ["/x"]).
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil {
		t.Fatalf("Dockerfile:%d: %s should be in exec form (a JSON array): %v", in.line, in.cmd, err)
	}
	return v
}

// copyArgs splits COPY/ADD arguments into flags, sources and destination.
func copyArgs(args string) (flags map[string]string, srcs []string, dst string) {
	flags = map[string]string{}
	fields := strings.Fields(args)
	for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(fields[0], "--"), "=")
		flags[k] = v
		fields = fields[1:]
	}
	if len(fields) == 0 {
		return flags, nil, ""
	}
	return flags, fields[:len(fields)-1], fields[len(fields)-1]
}

func TestDockerfile(t *testing.T) {
	file := filepath.Join(repoRoot, "Dockerfile")
	ins := parseDockerfile(t, file)
	var stages []string // stage names, or "" when unnamed
	var final []instruction
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			f := strings.Fields(in.args)
			name := ""
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				name = f[2]
			}
			if len(stages) == 0 && !strings.HasPrefix(f[0], "golang:") {
				t.Errorf("Dockerfile:%d: the build stage should start from a golang image, not %s", in.line, f[0])
			}
			stages = append(stages, name)
			final = nil
		case "ADD":
			if regexp.MustCompile(`(?i)\b(https?|git)://|git@`).MatchString(in.args) {
				t.Errorf("Dockerfile:%d: ADD of a remote URL (%s): fetch nothing at build time that the module cache does not pin", in.line, in.args)
			}
		}
		final = append(final, in)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stage(s); want a build stage and a final stage", len(stages))
	}

	// The build: static, trimmed.
	var built bool
	for _, in := range ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			built = true
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/churnflow"} {
				if !strings.Contains(in.args, want) {
					t.Errorf("Dockerfile:%d: go build without %s", in.line, want)
				}
			}
		}
	}
	if !built {
		t.Error("Dockerfile: no RUN go build")
	}

	// The final stage: non-root, the entry point, the port, the volume.
	var user, entry, cmd []string
	var exposed, volume bool
	for _, in := range final[1:] {
		switch in.cmd {
		case "USER":
			user = []string{in.args}
		case "ENTRYPOINT":
			entry = execForm(t, in)
		case "CMD":
			cmd = execForm(t, in)
		case "EXPOSE":
			exposed = exposed || slices.Contains(strings.Fields(in.args), httpPort)
		case "VOLUME":
			volume = volume || strings.Contains(in.args, stateDir)
		case "COPY":
			flags, _, _ := copyArgs(in.args)
			if from := flags["from"]; from != "" && !slices.Contains(stages, from) {
				t.Errorf("Dockerfile:%d: COPY --from=%s: no such stage (stages %q)", in.line, from, stages)
			}
		}
	}
	if user == nil {
		t.Error("Dockerfile: the final stage has no USER: it would run as root")
	} else {
		name, _, _ := strings.Cut(user[0], ":")
		if name == "root" || name == "0" {
			t.Errorf("Dockerfile: USER %s is root", user[0])
		}
		if uid, err := strconv.Atoi(name); err == nil && uid != nonRootUID {
			t.Errorf("Dockerfile: USER %d; the Kubernetes manifests and the state directory's owner assume %d", uid, nonRootUID)
		}
	}
	if !slices.Equal(entry, []string{"/churnflow"}) {
		t.Errorf("Dockerfile: ENTRYPOINT %q, want [\"/churnflow\"]", entry)
	}
	if len(cmd) < 3 || cmd[0] != "run" || cmd[1] != "--config" {
		t.Fatalf("Dockerfile: CMD %q, want [\"run\", \"--config\", FILE]", cmd)
	}
	if !exposed {
		t.Errorf("Dockerfile: no EXPOSE %s", httpPort)
	}
	if !volume {
		t.Errorf("Dockerfile: no VOLUME %s", stateDir)
	}

	// COPY sources from the context exist and .dockerignore keeps them; the
	// CMD's configuration file is one of them.
	ignore := readDockerignore(t)
	var configCopied bool
	for _, in := range ins {
		if in.cmd != "COPY" && in.cmd != "ADD" {
			continue
		}
		flags, srcs, dst := copyArgs(in.args)
		if flags["from"] != "" {
			continue
		}
		for _, src := range srcs {
			if src == "." {
				continue
			}
			if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
				t.Errorf("Dockerfile:%d: COPY %s: %v", in.line, src, err)
			}
			if ignore.excluded(src) {
				t.Errorf("Dockerfile:%d: COPY %s: .dockerignore leaves it out of the build context", in.line, src)
			}
		}
		if dst == cmd[2] {
			configCopied = true
			if len(srcs) != 1 || srcs[0] != path.Join("deploy", imageConfig) {
				t.Errorf("Dockerfile:%d: the configuration %s should come from deploy/%s", in.line, dst, imageConfig)
			}
		}
	}
	if !configCopied {
		t.Errorf("Dockerfile: CMD reads %s but no COPY puts a file there", cmd[2])
	}
}

// dockerignore is .dockerignore's patterns, matched as Docker does: against
// the path from the context's root and each of its parent directories, the
// last matching pattern deciding ("!" re-includes).
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func readDockerignore(t *testing.T) dockerignore {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var d dockerignore
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		p := path.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/"))
		d = append(d, struct {
			re     *regexp.Regexp
			negate bool
		}{globRegexp(p), neg})
	}
	return d
}

// globRegexp translates a .dockerignore pattern: * and ? within a path
// element, ** across elements.
func globRegexp(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func (d dockerignore) excluded(p string) bool {
	p = path.Clean(p)
	excluded := false
	for _, pat := range d {
		// The path itself or any parent directory.
		for q := p; q != "." && q != "/"; q = path.Dir(q) {
			if pat.re.MatchString(q) {
				excluded = !pat.negate
				break
			}
		}
	}
	return excluded
}

func TestDockerignore(t *testing.T) {
	ignore := readDockerignore(t)
	for _, p := range []string{"go.mod", "go.sum", "cmd/churnflow/main.go", "pipeline/metrics.go", "state/options.go",
		"operators", "internal", path.Join("deploy", imageConfig)} {
		if ignore.excluded(p) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", p)
		}
	}
	for _, p := range []string{".git/HEAD", ".cache/kafka", "pipeline.test", "churnflow", "deploy/k8s/statefulset.yaml",
		"cmd/churnflow/testdata/sample.jsonl"} {
		if !ignore.excluded(p) {
			t.Errorf(".dockerignore keeps %s in the build context", p)
		}
	}
	// Every package the binary needs is in the context.
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "../cmd/churnflow").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, _ := filepath.Abs(repoRoot)
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module from the module cache
		}
		if ignore.excluded(filepath.ToSlash(rel)) {
			t.Errorf(".dockerignore leaves out %s, a package cmd/churnflow imports", rel)
		}
	}
}

// ---------------------------------------------------------------------------
// The churnflow binary, for --print-config and --help

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func churnflowBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "churnflow-deploy-test")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "churnflow")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/churnflow/churnflow/cmd/churnflow").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/churnflow: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// printConfig runs "churnflow run --config file --print-config" with only
// env in the environment and returns the effective configuration.
func printConfig(t *testing.T, file string, env map[string]string) map[string]any {
	t.Helper()
	cmd := exec.Command(churnflowBinary(t), "run", "--config", file, "--print-config")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("churnflow run --config %s --print-config (env %v): %v\n%s", file, sortedKeys(env), err, stderr.String())
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(stdout.Bytes(), &cfg); err != nil {
		t.Fatalf("--print-config output: %v", err)
	}
	return cfg
}

// configEnvNames returns the CHURNFLOW_<SECTION>_<KEY> variable of every
// key of an effective configuration, and of its parent mappings.
func configEnvNames(cfg map[string]any) map[string]bool {
	names := map[string]bool{}
	var walk func(v any, prefix string)
	walk = func(v any, prefix string) {
		for k, x := range m(v) {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			names["CHURNFLOW_"+strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))] = true
			walk(x, key)
		}
	}
	walk(cfg, "")
	return names
}

// runFlagEnv are the variables of "churnflow run"'s flags (CHURNFLOW_<FLAG>).
var runFlagEnv = []string{"CHURNFLOW_CONFIG", "CHURNFLOW_BROKERS", "CHURNFLOW_GROUP", "CHURNFLOW_STATE", "CHURNFLOW_HTTP",
	"CHURNFLOW_API_TOKEN", "CHURNFLOW_CREATE_TOPICS", "CHURNFLOW_MEMORY", "CHURNFLOW_LOG_LEVEL", "CHURNFLOW_LOG_FORMAT", "CHURNFLOW_MODEL"}

func checkEnvNames(t *testing.T, where string, cfg map[string]any, env map[string]string) {
	t.Helper()
	known := configEnvNames(cfg)
	for name := range env {
		if strings.HasPrefix(name, "CHURNFLOW_") && !known[name] && !slices.Contains(runFlagEnv, name) {
			t.Errorf("%s: %s is not a churnflow configuration variable (no such key)", where, name)
		}
	}
}

// checkDeployedConfig checks what every deployment of churnflow here
// assumes: state on the volume, HTTP on all interfaces at port 8080.
func checkDeployedConfig(t *testing.T, where string, cfg map[string]any) {
	t.Helper()
	if got := s(dig(cfg, "state", "dir")); got != stateDir {
		t.Errorf("%s: state.dir %q, want the volume %s", where, got, stateDir)
	}
	host, port, err := net.SplitHostPort(s(dig(cfg, "http", "listen")))
	if err != nil || host != "0.0.0.0" || port != httpPort {
		t.Errorf("%s: http.listen %q, want 0.0.0.0:%s (a container is reached from outside)", where, s(dig(cfg, "http", "listen")), httpPort)
	}
	if got := s(dig(cfg, "log", "format")); got != "json" {
		t.Errorf("%s: log.format %q, want json in a container", where, got)
	}
}

func TestImageConfig(t *testing.T) {
	env := map[string]string{"CHURNFLOW_KAFKA_BROKERS": "kafka-1:9092,kafka-2:9092"}
	cfg := printConfig(t, imageConfig, env)
	checkDeployedConfig(t, imageConfig, cfg)
	if got := strs(dig(cfg, "kafka", "brokers")); !slices.Equal(got, []string{"kafka-1:9092", "kafka-2:9092"}) {
		t.Errorf("%s: CHURNFLOW_KAFKA_BROKERS did not set kafka.brokers: %q", imageConfig, got)
	}
}

// ---------------------------------------------------------------------------
// docker-compose.yml

// composeEnv returns a service's environment, ${VAR:-default} resolved to
// its default.
func composeEnv(t *testing.T, svc map[string]any) map[string]string {
	t.Helper()
	env := map[string]string{}
	switch e := svc["environment"].(type) {
	case map[string]any:
		for k, v := range e {
			env[k] = s(v)
		}
	case []any:
		for _, x := range e {
			k, v, _ := strings.Cut(s(x), "=")
			env[k] = v
		}
	}
	re := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}`)
	for k, v := range env {
		env[k] = re.ReplaceAllString(v, "$2")
	}
	return env
}

// composeCommand returns a service's command as a list.
func composeCommand(v any) []string {
	if c, ok := v.(string); ok {
		return strings.Fields(c)
	}
	return strs(v)
}

// composeMounts returns a service's bind mounts, target to source (relative
// to deploy/); named volumes are left out.
func composeMounts(svc map[string]any) map[string]string {
	mounts := map[string]string{}
	for _, v := range l(svc["volumes"]) {
		parts := strings.Split(s(v), ":")
		if len(parts) >= 2 && (strings.HasPrefix(parts[0], "./") || strings.HasPrefix(parts[0], "../") || strings.HasPrefix(parts[0], "/")) {
			mounts[parts[1]] = parts[0]
		}
	}
	return mounts
}

func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func TestCompose(t *testing.T) {
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	// Compose interpolates $VAR and ${VAR} everywhere: a shell variable in a
	// command must be written $$VAR. Allow only $$ and ${VAR:-default}.
	for i, line := range strings.Split(string(raw), "\n") {
		rest := regexp.MustCompile(`\$\$|\$\{[A-Za-z_][A-Za-z0-9_]*:-[^}]*\}`).ReplaceAllString(line, "")
		if strings.Contains(rest, "$") && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			t.Errorf("%s:%d: a bare $ (compose would substitute it; write $$ for the shell, or ${VAR:-default}): %s", composeFile, i+1, strings.TrimSpace(line))
		}
	}
	docs := yamlDocs(t, composeFile)
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1", composeFile, len(docs))
	}
	services := m(docs[0]["services"])
	for _, name := range []string{"kafka", "kafka-init", "churnflow", "gen", "prometheus", "grafana"} {
		if services[name] == nil {
			t.Errorf("%s: no service %q", composeFile, name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	namedVolumes := m(docs[0]["volumes"])
	for name, v := range services {
		svc := m(v)
		// Bind-mounted files exist; named volumes are declared.
		for _, vol := range l(svc["volumes"]) {
			src, _, _ := strings.Cut(s(vol), ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: service %s mounts %s: %v", composeFile, name, src, err)
				}
			} else if _, ok := namedVolumes[src]; !ok {
				t.Errorf("%s: service %s uses volume %q, not declared under volumes:", composeFile, name, src)
			}
		}
		if b := m(svc["build"]); b != nil {
			ctx := s(b["context"])
			df := s(b["dockerfile"])
			if df == "" {
				df = "Dockerfile"
			}
			if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
				t.Errorf("%s: service %s builds %s: %v", composeFile, name, filepath.Join(ctx, df), err)
			}
		}
		for dep := range m(svc["depends_on"]) {
			if services[dep] == nil {
				t.Errorf("%s: service %s depends on %q, which is not a service", composeFile, name, dep)
			}
		}
		for _, dep := range strs(svc["depends_on"]) {
			if services[dep] == nil {
				t.Errorf("%s: service %s depends on %q, which is not a service", composeFile, name, dep)
			}
		}
	}

	// Kafka: one combined KRaft node, no topic auto-creation.
	kafka := m(services["kafka"])
	if img := s(kafka["image"]); !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("kafka: image %q, want the official apache/kafka", img)
	}
	kenv := composeEnv(t, kafka)
	if roles := strings.Split(kenv["KAFKA_PROCESS_ROLES"], ","); !slices.Contains(roles, "broker") || !slices.Contains(roles, "controller") {
		t.Errorf("kafka: KAFKA_PROCESS_ROLES %q, want broker,controller (KRaft, combined)", kenv["KAFKA_PROCESS_ROLES"])
	}
	if id, err := base64.RawURLEncoding.DecodeString(kenv["CLUSTER_ID"]); err != nil || len(id) != 16 {
		t.Errorf("kafka: CLUSTER_ID %q is not a base64 UUID (kafka-storage.sh random-uuid)", kenv["CLUSTER_ID"])
	}
	if kenv["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] != "false" {
		t.Errorf("kafka: KAFKA_AUTO_CREATE_TOPICS_ENABLE %q, want false (a metadata request would create a one-partition topic)", kenv["KAFKA_AUTO_CREATE_TOPICS_ENABLE"])
	}
	if !strings.Contains(kenv["KAFKA_ADVERTISED_LISTENERS"], "//kafka:9092") {
		t.Errorf("kafka: KAFKA_ADVERTISED_LISTENERS %q does not advertise kafka:9092 to the compose network", kenv["KAFKA_ADVERTISED_LISTENERS"])
	}

	// churnflow: its configuration, accepted by churnflow itself.
	cf := m(services["churnflow"])
	args := composeCommand(cf["command"])
	cfgPath := flagValue(args, "--config")
	src, ok := composeMounts(cf)[cfgPath]
	if cfgPath == "" || !ok {
		t.Fatalf("churnflow: command %q, mounts %v: want --config FILE with FILE mounted", args, composeMounts(cf))
	}
	if src != "./compose/churnflow.yaml" {
		t.Errorf("churnflow: the configuration comes from %s, want ./compose/churnflow.yaml", src)
	}
	env := composeEnv(t, cf)
	cfg := printConfig(t, src, env)
	checkDeployedConfig(t, "compose churnflow", cfg)
	checkEnvNames(t, "compose churnflow", cfg, env)
	if !slices.Contains(strs(dig(cfg, "kafka", "brokers")), "kafka:9092") {
		t.Errorf("compose churnflow: kafka.brokers %q, want kafka:9092", strs(dig(cfg, "kafka", "brokers")))
	}
	if create, _ := dig(cfg, "kafka", "create_topics").(bool); !create {
		t.Error("compose churnflow: kafka.create_topics is false: the output topics would be missing")
	}
	var stateVolume bool
	for _, vol := range strs(cf["volumes"]) {
		stateVolume = stateVolume || strings.HasSuffix(strings.TrimSuffix(vol, ":rw"), ":"+stateDir)
	}
	if !stateVolume {
		t.Errorf("churnflow: no volume on %s", stateDir)
	}
	bookings, activity := s(dig(cfg, "kafka", "topics", "bookings")), s(dig(cfg, "kafka", "topics", "activity"))

	// kafka-init creates both input topics with one partition count.
	initCmd := strings.Join(composeCommand(m(services["kafka-init"])["command"]), " ")
	if !strings.Contains(initCmd, "kafka-topics.sh") || !strings.Contains(initCmd, "--create") {
		t.Errorf("kafka-init: command does not create topics with kafka-topics.sh: %s", initCmd)
	}
	for _, topic := range []string{bookings, activity} {
		if !strings.Contains(initCmd, topic) {
			t.Errorf("kafka-init: does not create the input topic %s", topic)
		}
	}
	if parts := regexp.MustCompile(`--partitions\s+(\d+)`).FindAllStringSubmatch(initCmd, -1); len(parts) != 1 {
		t.Errorf("kafka-init: want one --partitions N for both input topics (co-partitioned), found %d", len(parts))
	}

	// gen: known flags, the same brokers and topics.
	gen := m(services["gen"])
	gargs := composeCommand(gen["command"])
	if len(gargs) == 0 || gargs[0] != "gen" {
		t.Fatalf("gen: command %q, want gen ...", gargs)
	}
	help, err := exec.Command(churnflowBinary(t), "gen", "--help").Output()
	if err != nil {
		t.Fatalf("churnflow gen --help: %v", err)
	}
	for _, a := range gargs[1:] {
		if strings.HasPrefix(a, "--") {
			flag, _, _ := strings.Cut(a, "=")
			if !regexp.MustCompile(`(?m)^\s+(-\w, )?` + regexp.QuoteMeta(flag) + `\b`).Match(help) {
				t.Errorf("gen: churnflow gen has no flag %s", flag)
			}
		}
	}
	if b := flagValue(gargs, "--brokers"); b != "kafka:9092" {
		t.Errorf("gen: --brokers %q, want kafka:9092", b)
	}
	for flag, want := range map[string]string{"--topic-bookings": bookings, "--topic-activity": activity} {
		if v := flagValue(gargs, flag); v != "" && v != want {
			t.Errorf("gen: %s %s, but churnflow reads %s", flag, v, want)
		}
	}
	def := pipeline.DefaultTopics()
	if flagValue(gargs, "--topic-bookings") == "" && bookings != def.Bookings || flagValue(gargs, "--topic-activity") == "" && activity != def.Activity {
		t.Error("gen: produces to the default topics, churnflow reads others")
	}

	// Prometheus: its configuration and rules mounted side by side.
	prom := m(services["prometheus"])
	pm := composeMounts(prom)
	if pm["/etc/prometheus/prometheus.yml"] != "./"+promConfigFile {
		t.Errorf("prometheus: /etc/prometheus/prometheus.yml is %q, want ./%s", pm["/etc/prometheus/prometheus.yml"], promConfigFile)
	}
	pdoc := yamlDocs(t, promConfigFile)[0]
	for _, rf := range strs(pdoc["rule_files"]) {
		target := path.Join("/etc/prometheus", rf)
		if pm[target] == "" {
			t.Errorf("prometheus: rule file %s is not mounted", target)
		}
	}
	var scraped bool
	for _, sc := range l(pdoc["scrape_configs"]) {
		if s(m(sc)["job_name"]) != scrapeJob {
			continue
		}
		for _, st := range l(m(sc)["static_configs"]) {
			for _, target := range strs(m(st)["targets"]) {
				scraped = scraped || target == "churnflow:"+httpPort
			}
		}
	}
	if !scraped {
		t.Errorf("%s: no job %q scraping churnflow:%s", promConfigFile, scrapeJob, httpPort)
	}

	// Grafana: the dashboard where the provisioning looks, the datasource.
	gm := composeMounts(m(services["grafana"]))
	var provDash, provDS string
	for target, src := range gm {
		switch {
		case strings.HasSuffix(target, "/provisioning/dashboards"):
			provDash = src
		case strings.HasSuffix(target, "/provisioning/datasources"):
			provDS = src
		}
	}
	if provDash == "" || provDS == "" {
		t.Fatalf("grafana: mounts %v: want provisioning/dashboards and provisioning/datasources", gm)
	}
	var dashPaths []string
	files, _ := filepath.Glob(filepath.Join(provDash, "*.y*ml"))
	for _, f := range files {
		for _, p := range l(yamlDocs(t, f)[0]["providers"]) {
			dashPaths = append(dashPaths, s(dig(p, "options", "path")))
		}
	}
	var mounted bool
	for target, src := range gm {
		if src == "./"+dashboardFile && slices.Contains(dashPaths, path.Dir(target)) {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("grafana: %s is not mounted in a provisioned dashboards path %v", dashboardFile, dashPaths)
	}
	var promDS bool
	files, _ = filepath.Glob(filepath.Join(provDS, "*.y*ml"))
	for _, f := range files {
		for _, d := range l(yamlDocs(t, f)[0]["datasources"]) {
			promDS = promDS || (s(m(d)["type"]) == "prometheus" && s(m(d)["url"]) == "http://prometheus:9090")
		}
	}
	if !promDS {
		t.Error("grafana: no provisioned prometheus datasource at http://prometheus:9090")
	}
}

// ---------------------------------------------------------------------------
// Metric names

// knownMetrics returns every name a query may select: those of the
// registry "churnflow run" serves (httpapi.NewRegistry, with a state store
// so that the store's collector is in; histograms and summaries with their
// _bucket, _sum and _count series), pipeline.MetricNames() (a vector with
// no series yet is not gathered), and allowedMetrics.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	for _, n := range allowedMetrics {
		known[n] = true
	}
	for _, n := range pipeline.MetricNames() {
		known[n] = true
	}
	reg := servedRegistry(t)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		n := f.GetName()
		known[n] = true
		switch f.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			known[n+"_bucket"], known[n+"_sum"], known[n+"_count"] = true, true, true
		case "SUMMARY":
			known[n+"_sum"], known[n+"_count"] = true, true
		}
	}
	return known
}

// servedRegistry returns the registry "churnflow run" serves, over a store
// in a temporary directory.
func servedRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	opts := state.DefaultOptions(t.TempDir())
	opts.MemoryBudget = 16 * sizeMiB
	store, err := state.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg, _ := httpapi.NewRegistry(store)
	return reg
}

// churnflowMetrics are the names of churnflow's own metrics, which the
// dashboard must all show: the pipeline's and those httpapi registers.
func churnflowMetrics() []string {
	return append(pipeline.MetricNames(), httpapi.MetricBuildInfo, httpapi.MetricStateDiskBytes,
		httpapi.MetricStateCachedMembers, httpapi.MetricStateCachedBytes, httpapi.MetricStateMemberReads)
}

var (
	promStrings   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers  = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent     = regexp.MustCompile(`(^|[^A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*)`)
	promNonMetric = map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
		"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true,
		"topk": true, "bottomk": true, "quantile": true, "count_values": true, "group": true,
		"limitk": true, "limit_ratio": true, "start": true, "end": true,
	}
)

// metricNames returns the metric names a PromQL expression selects: its
// identifiers that are not functions, keywords, label names (in matchers
// and grouping clauses), strings or durations.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, `""`)
	e = promMatchers.ReplaceAllString(e, "{}")
	e = promRanges.ReplaceAllString(e, "[]")
	e = promGrouping.ReplaceAllString(e, "$1 ()")
	var names []string
	for _, loc := range promIdent.FindAllStringSubmatchIndex(e, -1) {
		name := e[loc[4]:loc[5]]
		rest := strings.TrimLeft(e[loc[5]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promNonMetric[strings.ToLower(name)] {
			continue
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

func TestMetricNamesParser(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`up{job="churnflow"} == 0`, []string{"up"}},
		{`sum by (topic, outcome) (rate(churnflow_records_consumed_total{instance=~"$instance"}[$__rate_interval]))`, []string{"churnflow_records_consumed_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 1e3 and on (instance) b offset 5m`, []string{"a_bucket", "b"}},
		{`(sum by (instance) (increase(x[6h])) or 0 * sum by (instance) (y)) == 0 and on (instance) (time() - process_start_time_seconds) > 6 * 3600`,
			[]string{"x", "y", "process_start_time_seconds"}},
		{`count by (instance, version) (churnflow_build_info{version!~"a b"})`, []string{"churnflow_build_info"}},
		{`sum(churnflow_members{activity="sleeping"}) / sum without (segment) (churnflow_members)`, []string{"churnflow_members"}},
		{`label_values(churnflow_assigned_partitions{job=~"$job"}, instance)`, []string{"churnflow_assigned_partitions", "instance"}},
	} {
		if got := metricNames(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
}

// ---------------------------------------------------------------------------
// The dashboard

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *datasourceRef  `json:"datasource"`
	GridPos    *map[string]int `json:"gridPos"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens rows.
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// queries returns every PromQL query of the dashboard, by where it is.
func (d dashboard) queries() map[string]string {
	q := map[string]string{}
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			q[fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID)] = tg.Expr
		}
	}
	return q
}

// variableQueries returns the query variables' label_values(...) queries.
func (d dashboard) variableQueries(t *testing.T) map[string]string {
	t.Helper()
	q := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var s string
		if json.Unmarshal(v.Query, &s) != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				t.Fatalf("variable %s: query: %v", v.Name, err)
			}
			s = obj.Query
		}
		q["variable "+v.Name] = s
	}
	return q
}

func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard: uid %q, title %q: both needed", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("dashboard: schemaVersion %d, want 36-41 (Grafana 9.4-11)", d.SchemaVersion)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	ids := map[int]bool{}
	var n int
	for _, p := range d.allPanels() {
		if ids[p.ID] {
			t.Errorf("dashboard: panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil {
			t.Errorf("dashboard: panel %d %q has no gridPos", p.ID, p.Title)
		}
		if p.Type == "row" {
			continue
		}
		n++
		if p.Title == "" {
			t.Errorf("dashboard: panel %d has no title", p.ID)
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID == "" {
			t.Errorf("dashboard: panel %d %q: datasource %+v, want a prometheus one", p.ID, p.Title, p.Datasource)
		} else if v, ok := strings.CutPrefix(p.Datasource.UID, "$"); ok && !vars[strings.Trim(v, "{}")] {
			t.Errorf("dashboard: panel %d %q: datasource %s is not a variable of the dashboard", p.ID, p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("dashboard: panel %d %q has no targets", p.ID, p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("dashboard: panel %d %q: target %s has no expr", p.ID, p.Title, tg.RefID)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("dashboard: panel %d %q: refId %q empty or repeated", p.ID, p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && *tg.Datasource != *p.Datasource {
				t.Errorf("dashboard: panel %d %q: target %s has another datasource", p.ID, p.Title, tg.RefID)
			}
		}
	}
	if n < 20 {
		t.Errorf("dashboard: %d panels", n)
	}
	// Every metric of churnflow's own has a panel.
	used := map[string]bool{}
	for _, expr := range d.queries() {
		for _, name := range metricNames(expr) {
			used[name] = true
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				used[strings.TrimSuffix(name, suffix)] = true
			}
		}
	}
	for _, name := range churnflowMetrics() {
		if !used[name] {
			t.Errorf("dashboard: no panel shows %s", name)
		}
	}
}

func TestMetricNamesExist(t *testing.T) {
	known := knownMetrics(t)
	d := readDashboard(t)
	queries := d.queries()
	for where, q := range d.variableQueries(t) {
		if inner, ok := strings.CutPrefix(q, "label_values("); ok {
			// label_values(metric{...}, label): the label is not a metric.
			if i := strings.LastIndex(inner, ","); i >= 0 {
				queries[where] = inner[:i]
			} else {
				queries[where] = strings.TrimSuffix(inner, ")")
			}
		} else {
			queries[where] = q
		}
	}
	for where, expr := range queries {
		for _, name := range metricNames(expr) {
			if !known[name] {
				t.Errorf("%s, %s: %s is not a metric churnflow registers", dashboardFile, where, name)
			}
		}
	}
	for _, r := range rules(t) {
		for _, name := range metricNames(r.Expr) {
			if !known[name] {
				t.Errorf("%s, alert %s: %s is not a metric churnflow registers", rulesFile, r.Alert, name)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Alerting rules

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func rules(t *testing.T) []rule {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var out []rule
	for _, g := range doc.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

func TestAlertingRules(t *testing.T) {
	rs := rules(t)
	want := []string{"ChurnflowDown", "ChurnflowConsumerLagGrowing", "ChurnflowDeadLetterRateHigh", "ChurnflowOutboxStuck",
		"ChurnflowNoAlerts", "ChurnflowKafkaClientsFailing", "ChurnflowRestoreSlow"}
	var names []string
	for _, r := range rs {
		names = append(names, r.Alert)
		if r.Alert == "" {
			t.Errorf("%s: a rule without alert: %q (recording rules belong elsewhere)", rulesFile, r.Record)
			continue
		}
		if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
			t.Errorf("%s: %s: severity %q, want critical or warning", rulesFile, r.Alert, sev)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: %s: want a summary and a description", rulesFile, r.Alert)
		}
		if r.For == "" {
			t.Errorf("%s: %s: no for: it would fire on one evaluation", rulesFile, r.Alert)
		}
	}
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("%s: no alert %s", rulesFile, w)
		}
	}
	// Every alert has a unit test.
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !regexp.MustCompile(`alertname:\s*` + n + `\b`).Match(tests) {
			t.Errorf("%s: no test of %s", rulesTestFile, n)
		}
	}
}

// ---------------------------------------------------------------------------
// promtool

// promtool returns promtool's path. Missing, the test fails under CI=true
// (scripts/test.sh installs it) and skips otherwise.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found; scripts/test.sh installs it (Debian package prometheus)")
		}
		t.Skip("promtool not found (apt-get install prometheus); scripts/test.sh installs it, and CI fails without it")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Errorf("promtool %s: %v", strings.Join(args, " "), err)
	}
}

func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, "check", "rules", rulesFile)
}

func TestPromtoolTestRules(t *testing.T) {
	runPromtool(t, "test", "rules", rulesTestFile)
}

func TestPromtoolCheckConfig(t *testing.T) {
	// Offline: it reads the rule files prometheus.yml names, resolves no
	// target.
	runPromtool(t, "check", "config", promConfigFile)
}

// TestPromtoolCheckK8sConfig checks the example Kubernetes scrape job.
// Debian's promtool is built without Kubernetes service discovery: then the
// job is checked with static targets instead, which still checks its
// relabelling (regular expressions, actions, labels).
func TestPromtoolCheckK8sConfig(t *testing.T) {
	pt := promtool(t)
	out, err := exec.Command(pt, "check", "config", promK8sConfigFile).CombinedOutput()
	t.Logf("promtool check config %s:\n%s", promK8sConfigFile, out)
	if err == nil {
		return
	}
	if !strings.Contains(string(out), "field kubernetes_sd_configs not found") {
		t.Fatalf("promtool check config %s: %v", promK8sConfigFile, err)
	}
	data, err := os.ReadFile(promK8sConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	sd := regexp.MustCompile(`(?m)^(\s*)kubernetes_sd_configs:\n\s*- role: pod\n`)
	if !sd.Match(data) {
		t.Fatalf("%s: no kubernetes_sd_configs with role pod", promK8sConfigFile)
	}
	data = sd.ReplaceAll(data, []byte("${1}static_configs:\n${1}  - targets: [\"churnflow-0:8080\"]\n"))
	dir := t.TempDir()
	for _, f := range strs(yamlDocs(t, promK8sConfigFile)[0]["rule_files"]) {
		rules, err := os.ReadFile(filepath.Join(filepath.Dir(promK8sConfigFile), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), rules, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, filepath.Base(promK8sConfigFile))
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(pt, "check", "config", file).CombinedOutput()
	t.Logf("this promtool has no Kubernetes discovery; with static targets instead:\n%s", out)
	if err != nil {
		t.Errorf("promtool check config %s (static targets): %v", promK8sConfigFile, err)
	}
}

// TestPromtoolDashboardQueries checks every dashboard query's PromQL by
// writing them as recording rules, Grafana's variables replaced by values.
func TestPromtoolDashboardQueries(t *testing.T) {
	pt := promtool(t)
	d := readDashboard(t)
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
		"${__rate_interval}", "5m", "${__interval}", "1m", "${__range}", "1h")
	otherVar := regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)
	type rec struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var recs []rec
	queries := d.queries()
	for _, where := range sortedKeys(queries) {
		expr := otherVar.ReplaceAllString(vars.Replace(queries[where]), ".*")
		recs = append(recs, rec{Record: fmt.Sprintf("dashboard:query_%d", len(recs)+1), Expr: expr})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": recs}}}
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pt, "check", "rules", file).CombinedOutput()
	t.Logf("promtool check rules (the dashboard's %d queries):\n%s", len(recs), out)
	if err != nil {
		t.Errorf("promtool check rules on the dashboard's queries: %v", err)
		for i, r := range recs {
			t.Logf("dashboard:query_%d = %s", i+1, r.Expr)
		}
	}
}

// ---------------------------------------------------------------------------
// Kubernetes

type k8sObject struct {
	file string
	doc  map[string]any
}

func (o k8sObject) kind() string { return s(o.doc["kind"]) }
func (o k8sObject) name() string { return s(dig(o.doc, "metadata", "name")) }

func k8sObjects(t *testing.T) (objs []k8sObject, resources []string) {
	t.Helper()
	kust := yamlDocs(t, filepath.Join(k8sDir, "kustomization.yaml"))[0]
	if s(kust["kind"]) != "Kustomization" {
		t.Fatalf("kustomization.yaml: kind %q", s(kust["kind"]))
	}
	resources = strs(kust["resources"])
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" {
			continue
		}
		if !slices.Contains(resources, base) {
			t.Errorf("kustomization.yaml: resources does not list %s", base)
		}
		for _, doc := range yamlDocs(t, f) {
			objs = append(objs, k8sObject{file: base, doc: doc})
		}
	}
	for _, r := range resources {
		if _, err := os.Stat(filepath.Join(k8sDir, r)); err != nil {
			t.Errorf("kustomization.yaml: resource %s: %v", r, err)
		}
	}
	return objs, resources
}

func find(objs []k8sObject, kind string) []k8sObject {
	var out []k8sObject
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// selects reports whether a selector's labels are all among labels.
func selects(selector, labels map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if s(labels[k]) != s(v) {
			return false
		}
	}
	return true
}

// parseBytes reads a churnflow size (512MiB, 1GiB, 500MB, 64KiB, 1024).
func parseBytes(v string) (int64, error) {
	re := regexp.MustCompile(`^(\d+)\s*([KMGT]i?B|B)?$`)
	sm := re.FindStringSubmatch(strings.TrimSpace(v))
	if sm == nil {
		return 0, fmt.Errorf("%q is not a size", v)
	}
	n, _ := strconv.ParseInt(sm[1], 10, 64)
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[sm[2]]
	return n * mult, nil
}

// parseQuantity reads a Kubernetes memory quantity (1Gi, 1536Mi, 2G, 1e9).
func parseQuantity(v string) (int64, error) {
	re := regexp.MustCompile(`^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$`)
	sm := re.FindStringSubmatch(strings.TrimSpace(v))
	if sm == nil {
		return 0, fmt.Errorf("%q is not a quantity this test reads", v)
	}
	n, _ := strconv.ParseInt(sm[1], 10, 64)
	mult := map[string]int64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
		"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[sm[2]]
	return n * mult, nil
}

func TestKubernetes(t *testing.T) {
	objs, _ := k8sObjects(t)
	counts := map[string]int{}
	for _, o := range objs {
		counts[o.kind()]++
		if o.name() == "" {
			t.Errorf("%s: a %s without metadata.name", o.file, o.kind())
		}
	}
	for kind, n := range map[string]int{"StatefulSet": 1, "Service": 2, "PodDisruptionBudget": 1, "ConfigMap": 1, "Secret": 1} {
		if counts[kind] != n {
			t.Errorf("k8s: %d %s, want %d", counts[kind], kind, n)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	sts := find(objs, "StatefulSet")[0].doc
	spec := m(sts["spec"])
	pod := m(dig(spec, "template", "spec"))
	podLabels := m(dig(spec, "template", "metadata", "labels"))
	if !selects(m(dig(spec, "selector", "matchLabels")), podLabels) {
		t.Error("statefulset: selector does not select the pod template's labels")
	}

	// Services: a headless one governing the StatefulSet, one for HTTP.
	var headless string
	for _, svc := range find(objs, "Service") {
		ss := m(svc.doc["spec"])
		if !selects(m(ss["selector"]), podLabels) {
			t.Errorf("service %s: selector does not select the churnflow pods", svc.name())
		}
		if s(ss["clusterIP"]) == "None" {
			headless = svc.name()
		}
		var port bool
		for _, p := range l(ss["ports"]) {
			port = port || s(m(p)["targetPort"]) == "http" || s(m(p)["targetPort"]) == httpPort
		}
		if !port {
			t.Errorf("service %s: no port to the container's http port", svc.name())
		}
	}
	if headless == "" || s(spec["serviceName"]) != headless {
		t.Errorf("statefulset: serviceName %q, want the headless service (%q)", s(spec["serviceName"]), headless)
	}
	pdb := find(objs, "PodDisruptionBudget")[0]
	if !selects(m(dig(pdb.doc, "spec", "selector", "matchLabels")), podLabels) {
		t.Error("poddisruptionbudget: selector does not select the churnflow pods")
	}

	// Scrape annotations.
	ann := m(dig(spec, "template", "metadata", "annotations"))
	if s(ann["prometheus.io/scrape"]) != "true" || s(ann["prometheus.io/port"]) != httpPort || s(ann["prometheus.io/path"]) != "/metrics" {
		t.Errorf("statefulset: pod annotations %v, want prometheus.io/scrape \"true\", port %q, path /metrics", ann, httpPort)
	}

	// The pod: non-root, time to flush on SIGTERM.
	psc := m(pod["securityContext"])
	if psc["runAsNonRoot"] != true {
		t.Error("statefulset: pod securityContext.runAsNonRoot is not true")
	}
	if uid, _ := psc["runAsUser"].(int); uid != nonRootUID {
		t.Errorf("statefulset: pod runAsUser %v, want %d (the image's user)", psc["runAsUser"], nonRootUID)
	}
	if fsg, _ := psc["fsGroup"].(int); fsg != nonRootUID {
		t.Errorf("statefulset: pod fsGroup %v, want %d: the state volume must be writable", psc["fsGroup"], nonRootUID)
	}
	if g, _ := pod["terminationGracePeriodSeconds"].(int); g < 30 {
		t.Errorf("statefulset: terminationGracePeriodSeconds %v, want at least 30 (finish the batch, flush the outbox)", pod["terminationGracePeriodSeconds"])
	}
	containers := l(pod["containers"])
	if len(containers) != 1 {
		t.Fatalf("statefulset: %d containers, want 1", len(containers))
	}
	c := m(containers[0])
	csc := m(c["securityContext"])
	if csc["readOnlyRootFilesystem"] != true || csc["allowPrivilegeEscalation"] != false || !slices.Contains(strs(dig(csc, "capabilities", "drop")), "ALL") {
		t.Errorf("statefulset: container securityContext %v, want readOnlyRootFilesystem, no privilege escalation, capabilities dropped", csc)
	}
	var containerPort bool
	for _, p := range l(c["ports"]) {
		containerPort = containerPort || (s(m(p)["name"]) == "http" && s(m(p)["containerPort"]) == httpPort)
	}
	if !containerPort {
		t.Errorf("statefulset: no container port http %s", httpPort)
	}

	// Probes.
	for probe, want := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"} {
		get := m(dig(c, probe, "httpGet"))
		if s(get["path"]) != want || (s(get["port"]) != "http" && s(get["port"]) != httpPort) {
			t.Errorf("statefulset: %s %v, want GET %s on port http", probe, get, want)
		}
	}

	// Volumes: state on the claim template, the config from the ConfigMap.
	mounts := map[string]string{} // mount path -> volume
	for _, vm := range l(c["volumeMounts"]) {
		mounts[s(m(vm)["mountPath"])] = s(m(vm)["name"])
	}
	var claim bool
	for _, vct := range l(spec["volumeClaimTemplates"]) {
		claim = claim || s(dig(vct, "metadata", "name")) == mounts[stateDir]
	}
	if !claim {
		t.Errorf("statefulset: %s is not on a volumeClaimTemplates volume", stateDir)
	}
	args := strs(c["args"])
	cfgPath := flagValue(args, "--config")
	if cfgPath == "" {
		t.Fatalf("statefulset: args %q, want run --config FILE", args)
	}
	cmName := ""
	for _, v := range l(pod["volumes"]) {
		if s(m(v)["name"]) == mounts[path.Dir(cfgPath)] {
			cmName = s(dig(v, "configMap", "name"))
		}
	}
	var cfgText string
	for _, cm := range find(objs, "ConfigMap") {
		if cm.name() == cmName {
			cfgText = s(dig(cm.doc, "data", path.Base(cfgPath)))
		}
	}
	if cfgText == "" {
		t.Fatalf("statefulset: --config %s: no ConfigMap %q with key %s mounted at %s", cfgPath, cmName, path.Base(cfgPath), path.Dir(cfgPath))
	}

	// Secrets referenced exist with their keys; env names are real keys.
	secrets := map[string]map[string]any{}
	for _, sec := range find(objs, "Secret") {
		keys := map[string]any{}
		for k, v := range m(sec.doc["stringData"]) {
			keys[k] = v
		}
		for k, v := range m(sec.doc["data"]) {
			keys[k] = v
		}
		secrets[sec.name()] = keys
	}
	env := map[string]string{}
	for _, e := range l(c["env"]) {
		name := s(m(e)["name"])
		if ref := m(dig(e, "valueFrom", "secretKeyRef")); ref != nil {
			keys, ok := secrets[s(ref["name"])]
			if !ok {
				t.Errorf("statefulset: env %s: no Secret %q", name, s(ref["name"]))
			} else if _, ok := keys[s(ref["key"])]; !ok {
				t.Errorf("statefulset: env %s: Secret %q has no key %q", name, s(ref["name"]), s(ref["key"]))
			}
			env[name] = "secret-from-k8s"
		} else {
			env[name] = s(m(e)["value"])
		}
	}
	for _, want := range []string{"CHURNFLOW_HTTP_API_TOKEN", "CHURNFLOW_KAFKA_SASL_PASSWORD"} {
		if _, ok := env[want]; !ok {
			t.Errorf("statefulset: no env %s from the Secret", want)
		}
	}

	// The ConfigMap's file, as churnflow reads it in the pod.
	file := filepath.Join(t.TempDir(), "churnflow.yaml")
	if err := os.WriteFile(file, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := printConfig(t, file, env)
	checkDeployedConfig(t, "k8s ConfigMap", cfg)
	checkEnvNames(t, "statefulset", cfg, env)

	// Memory: the limit holds GOMEMLIMIT (from state.memory_budget) plus
	// the memory-mapped files and stacks above it.
	budget, err := parseBytes(s(dig(cfg, "state", "memory_budget")))
	if err != nil {
		t.Fatal(err)
	}
	limit, err := parseQuantity(s(dig(c, "resources", "limits", "memory")))
	if err != nil {
		t.Fatalf("statefulset: resources.limits.memory: %v", err)
	}
	request, err := parseQuantity(s(dig(c, "resources", "requests", "memory")))
	if err != nil {
		t.Fatalf("statefulset: resources.requests.memory: %v", err)
	}
	if need := state.RecommendedMemoryLimit(budget) + mmapHeadroom; limit < need {
		t.Errorf("statefulset: memory limit %d MiB, below GOMEMLIMIT %d MiB (memory_budget %d MiB) + %d MiB", limit/sizeMiB,
			state.RecommendedMemoryLimit(budget)/sizeMiB, budget/sizeMiB, mmapHeadroom/sizeMiB)
	}
	if request != limit {
		t.Errorf("statefulset: memory request %d MiB, limit %d MiB: keep them equal", request/sizeMiB, limit/sizeMiB)
	}
	if dig(c, "resources", "requests", "cpu") == nil {
		t.Error("statefulset: no CPU request")
	}
}

// TestKustomizeBuild renders the kustomization with kubectl's built-in
// kustomize (offline), when kubectl is installed.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not found: kustomize build not checked")
	}
	out, err := exec.Command(kubectl, "kustomize", k8sDir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", k8sDir, err, out)
	}
	docs, err := decodeYAMLDocs(out)
	if err != nil {
		t.Fatalf("kubectl kustomize output: %v", err)
	}
	var kinds []string
	for _, d := range docs {
		kinds = append(kinds, s(d["kind"]))
		if s(d["kind"]) == "StatefulSet" {
			img := s(m(l(dig(d, "spec", "template", "spec", "containers"))[0])["image"])
			if !strings.Contains(img, ":") {
				t.Errorf("kustomize: image %q has no tag", img)
			}
		}
	}
	sort.Strings(kinds)
	t.Logf("kubectl kustomize %s: %v", k8sDir, kinds)
	if want := []string{"ConfigMap", "PodDisruptionBudget", "Secret", "Service", "Service", "StatefulSet"}; !slices.Equal(kinds, want) {
		t.Errorf("kustomize: kinds %v, want %v", kinds, want)
	}
}

func sortedKeys[V any](mp map[string]V) []string {
	keys := make([]string, 0, len(mp))
	for k := range mp {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
