package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/churnflow/churnflow/internal/kafkatest"
	"github.com/churnflow/churnflow/operators"
	"github.com/churnflow/churnflow/pipeline"
	"github.com/churnflow/churnflow/state"
)

// TestSecurityRealKafka runs churnflow through the secured listeners of one
// real Apache Kafka (kafkatest.StartSecure): TLS with a client certificate,
// SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512. Through each, "churnflow
// run" creates its output topics and turns events into a dormancy alert
// and a dead letter, read back over the same listener. Wrong credentials
// and certificates fail within seconds, saying what to fix.
func TestSecurityRealKafka(t *testing.T) {
	if !kafkatest.Enabled() {
		t.Skip("real Apache Kafka test: set CHURNFLOW_REAL_KAFKA=1 (needs java 17+, and mvn on first use)")
	}
	t0 := time.Now()
	sec := kafkatest.StartSecure(t)
	t.Logf("secure broker up in %v", time.Since(t0).Round(time.Millisecond))

	tlsYAML := func(ca, cert, key string) string {
		s := fmt.Sprintf("  tls:\n    enabled: true\n    ca_file: %q\n", ca)
		if cert != "" {
			s += fmt.Sprintf("    cert_file: %q\n    key_file: %q\n", cert, key)
		}
		return s
	}
	saslYAML := func(mech, password string) string {
		s := fmt.Sprintf("  sasl:\n    mechanism: %s\n    username: %s\n", mech, sec.User)
		if password != "" {
			s += fmt.Sprintf("    password: %q\n", password)
		}
		return s
	}
	goodTLS := tlsYAML(sec.CAFile, sec.CertFile, sec.KeyFile)

	t.Run("listeners", func(t *testing.T) {
		for _, c := range []struct {
			name, brokers, security, want string
			env                           map[string]string
		}{
			{"TLS client certificate", sec.SSL, goodTLS, "tls", nil},
			{"SASL PLAIN", sec.SASL, saslYAML("plain", sec.Password), "sasl plain", nil},
			// The password from the key's variable, not the file.
			{"SASL SCRAM-SHA-256", sec.SASL, saslYAML("scram-sha-256", ""), "sasl scram-sha-256",
				map[string]string{"CHURNFLOW_KAFKA_SASL_PASSWORD": sec.Password}},
			{"SASL SCRAM-SHA-512", sec.SASL, saslYAML("SCRAM-SHA-512", sec.Password), "sasl scram-sha-512", nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				runSecured(t, c.brokers, c.security, c.env, c.want)
			})
		}
	})

	t.Run("failures", func(t *testing.T) {
		for _, c := range []struct {
			name, brokers, security string
			want                    []string
		}{
			{"wrong password PLAIN", sec.SASL, saslYAML("plain", "not-"+sec.Password),
				[]string{"SASL authentication failed", `user "churnflow"`, "kafka.sasl.password"}},
			{"wrong password SCRAM-SHA-256", sec.SASL, saslYAML("scram-sha-256", "not-"+sec.Password),
				[]string{"SASL authentication failed", "mechanism scram-sha-256", "kafka.sasl.password"}},
			{"wrong password SCRAM-SHA-512", sec.SASL, saslYAML("scram-sha-512", "not-"+sec.Password),
				[]string{"SASL authentication failed", "mechanism scram-sha-512", "kafka.sasl.password"}},
			{"untrusted broker certificate", sec.SSL, tlsYAML(sec.OtherCAFile, sec.CertFile, sec.KeyFile),
				[]string{"certificate is not signed by a CA churnflow trusts", "kafka.tls.ca_file", "x509: certificate signed by unknown authority"}},
			{"client certificate of another CA", sec.SSL, tlsYAML(sec.CAFile, sec.OtherCertFile, sec.OtherKeyFile),
				[]string{"broker rejected the client certificate", "kafka.tls.cert_file"}},
			{"no client certificate", sec.SSL, tlsYAML(sec.CAFile, "", ""),
				[]string{"requires a client certificate", "kafka.tls.cert_file"}},
			{"plaintext to the TLS listener", sec.SSL, "",
				[]string{"closed the connection", "check kafka.tls and kafka.sasl"}},
			{"TLS to the PLAINTEXT listener", sec.Bootstrap, goodTLS,
				[]string{"closed the connection (connecting with tls)", "check kafka.tls and kafka.sasl"}},
			{"plaintext to the SASL listener", sec.SASL, "",
				[]string{"closed the connection (connecting with plaintext)", "check kafka.tls and kafka.sasl"}},
			{"SASL to the PLAINTEXT listener", sec.Bootstrap, saslYAML("scram-sha-256", sec.Password),
				[]string{"SASL authentication failed", "does not take SASL"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				cfg := writeTemp(t, "churnflow.yaml", fmt.Sprintf("kafka:\n  brokers: [%s]\n  group: fail\n%s", c.brokers, c.security))
				t0 := time.Now()
				code, _, stderr := run(t, "", nil, "run", "--config", cfg, "--state", filepath.Join(dir, "state"), "--log-level", "warn")
				took := time.Since(t0)
				t.Logf("failed in %v: %s", took.Round(time.Millisecond), lastLine(stderr))
				if code != exitFatal {
					t.Errorf("exit %d, want %d: %s", code, exitFatal, stderr)
				}
				for _, w := range c.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr lacks %q:\n%s", w, stderr)
					}
				}
				if took > 5*time.Second {
					t.Errorf("took %v to fail; want a few seconds at most", took)
				}
				if strings.Contains(stderr, "not-"+sec.Password) {
					t.Errorf("the password is in the output:\n%s", stderr)
				}
			})
		}
	})

	// server_name and insecure_skip_verify, at the start-up check.
	t.Run("server name", func(t *testing.T) {
		for _, c := range []struct {
			name, keys, want string
		}{
			{"not in the certificate", "    server_name: kafka.example\n", `not valid for "kafka.example"`},
			{"in the certificate", "    server_name: localhost\n", ""},
			{"unchecked", "    insecure_skip_verify: true\n", ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				ca := sec.CAFile
				if c.name == "unchecked" {
					ca = sec.OtherCAFile // not the broker's: only skipping the check connects
				}
				file := writeTemp(t, "c.yaml", "kafka:\n"+tlsYAML(ca, sec.CertFile, sec.KeyFile)+c.keys)
				k := loadTestKafka(t, file, sec.SSL)
				d, err := k.Dialer()
				if err != nil {
					t.Fatal(err)
				}
				err = checkBrokers(t.Context(), &k, d)
				switch {
				case c.want == "" && err != nil:
					t.Errorf("%v", err)
				case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "kafka.tls.server_name")):
					t.Errorf("got %v, want %q", err, c.want)
				}
			})
		}
	})

	// The pipeline itself (not only run's start-up check) stops on a
	// refused password rather than retrying.
	t.Run("pipeline Run fails fast on a refused password", func(t *testing.T) {
		k := defaultConfig().Kafka
		k.Brokers = []string{sec.SASL}
		k.SASL = SASLConfig{Mechanism: saslSCRAMSHA256, Username: sec.User, Password: "not-" + sec.Password}
		pc := k.Pipeline()
		var err error
		if pc.Dialer, err = k.Dialer(); err != nil {
			t.Fatal(err)
		}
		store, err := state.Open(state.DefaultOptions(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		engine, err := operators.NewEngine(operators.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		p, err := pipeline.New(pc, pipeline.Deps{Engine: engine, Store: store})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		t0 := time.Now()
		err = p.Run(ctx)
		took := time.Since(t0)
		t.Logf("Run returned in %v: %v", took.Round(time.Millisecond), err)
		if !errors.Is(err, kafka.SASLAuthenticationFailed) {
			t.Errorf("Run: %v, want SASL Authentication Failed", err)
		}
		if took > 5*time.Second {
			t.Errorf("Run took %v to fail", took)
		}
		msg := explainKafkaError(&k, err).Error()
		if !strings.Contains(msg, "SASL authentication failed") || !strings.Contains(msg, "kafka.sasl.password") {
			t.Errorf("explained: %s", msg)
		}
	})

	t.Run("gen over SCRAM-SHA-512", func(t *testing.T) {
		cfgText := "kafka:\n" + saslYAML("scram-sha-512", sec.Password)
		cfg := writeTemp(t, "churnflow.yaml", cfgText)
		k := loadTestKafka(t, cfg, sec.SASL)
		d, err := k.Dialer()
		if err != nil {
			t.Fatal(err)
		}
		createSecuredTopics(t, sec.SASL, d, 2, "gensec.bookings", "gensec.activity")
		code, _, stderr := run(t, "", nil, "gen", "--brokers", sec.SASL, "--config", cfg, "--members", "20", "--days", "60",
			"--topic-bookings", "gensec.bookings", "--topic-activity", "gensec.activity")
		if code != exitOK || !strings.Contains(stderr, "gen: produced") {
			t.Fatalf("gen exit %d: %s", code, stderr)
		}
		if m := readOne(t, sec.SASL, d, "gensec.activity"); len(m.Value) == 0 {
			t.Fatalf("nothing read back from gensec.activity")
		}
		// A wrong password fails before producing anything.
		bad := writeTemp(t, "bad.yaml", "kafka:\n"+saslYAML("scram-sha-512", "not-"+sec.Password))
		t0 := time.Now()
		code, _, stderr = run(t, "", nil, "gen", "--brokers", sec.SASL, "--config", bad, "--members", "20",
			"--topic-bookings", "gensec.bookings", "--topic-activity", "gensec.activity")
		if code != exitFatal || !strings.Contains(stderr, "SASL authentication failed") || time.Since(t0) > 5*time.Second {
			t.Errorf("gen with a wrong password: exit %d after %v: %s", code, time.Since(t0).Round(time.Millisecond), stderr)
		}
	})
}

// runSecured runs "churnflow run" through brokers with the kafka section's
// security lines: events in, a dormancy alert and a dead letter out, all
// over the secured listener, then a clean stop.
func runSecured(t *testing.T, brokers, security string, env map[string]string, wantSecurity string) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	prefix := "sec-" + strings.NewReplacer(" ", "-", "+", "").Replace(strings.ToLower(wantSecurity))
	topics := map[string]string{}
	var tl strings.Builder
	for _, k := range []string{"bookings", "activity", "dormancy", "retention", "nudges", "segments", "dead_letter"} {
		topics[k] = prefix + "." + k
		fmt.Fprintf(&tl, "    %s: %s\n", k, topics[k])
	}
	dir := t.TempDir()
	cfgFile := writeTemp(t, "churnflow.yaml", fmt.Sprintf(`kafka:
  brokers: [%s]
  group: %s
  create_topics: true
  idle_after: 1s
  topics:
%s%slog:
  level: debug
http:
  listen: 127.0.0.1:0
`, brokers, prefix, tl.String(), security))
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := loadConfig(cfgFile, getenv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Kafka.security(); got != wantSecurity {
		t.Fatalf("security %q, want %q", got, wantSecurity)
	}
	d, err := cfg.Kafka.Dialer()
	if err != nil || d == nil {
		t.Fatalf("dialer %v, %v", d, err)
	}

	// The input topics, and the events, through the secured listener.
	createSecuredTopics(t, brokers, d, 1, topics["bookings"], topics["activity"])
	w := &kafka.Writer{Addr: kafka.TCP(brokers), Transport: transport(d), RequiredAcks: kafka.RequireAll,
		Balancer: &kafka.Murmur2Balancer{}, BatchTimeout: 5 * time.Millisecond}
	err = w.WriteMessages(ctx,
		kafka.Message{Topic: topics["activity"], Key: []byte("M0001"), Value: []byte(`{"event_id":"en-1","type":"enrolment","member_id":"M0001","occurred_at":"2025-01-01T09:00:00Z","tier":"gold","region":"north"}`)},
		kafka.Message{Topic: topics["bookings"], Key: []byte("M0001"), Value: []byte(`{"event_id":"bk-1","type":"booking","member_id":"M0001","occurred_at":"2025-01-02T10:00:00Z","amount":420.5,"distance_km":1250,"segments":1,"discount":0.85,"product":"flight"}`)},
		kafka.Message{Topic: topics["activity"], Key: []byte("M0003"), Value: []byte(`{not json`)},
	)
	w.Close()
	if err != nil {
		t.Fatalf("produce through %s: %v", wantSecurity, err)
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var out, errb syncBuffer
	s := streams{in: strings.NewReader(""), out: &out, err: &errb, getenv: getenv}
	done := make(chan int, 1)
	t0 := time.Now()
	go func() {
		done <- execute(runCtx, []string{"run", "--config", cfgFile, "--state", filepath.Join(dir, "state"), "--memory", "64MiB"}, s)
	}()

	type result struct {
		m   kafka.Message
		err error
	}
	read := func(topic string) kafka.Message {
		t.Helper()
		got := make(chan result, 1)
		go func() {
			m, err := readMessage(ctx, brokers, d, topic)
			got <- result{m, err}
		}()
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatalf("read %s: %v\n%s", topic, r.err, errb.String())
			}
			return r.m
		case code := <-done:
			t.Fatalf("run exited %d before a record on %s: %s", code, topic, errb.String())
		}
		return kafka.Message{}
	}
	alert := read(topics["dormancy"])
	var a struct {
		ID string `json:"alert_id"`
	}
	if err := json.Unmarshal(alert.Value, &a); err != nil || string(alert.Key) != "M0001" || a.ID != "dormancy:M0001:2025-04-02" {
		t.Errorf("dormancy alert: key %q value %s (%v)", alert.Key, alert.Value, err)
	}
	if dead := read(topics["dead_letter"]); string(dead.Key) != "M0003" || string(dead.Value) != "{not json" {
		t.Errorf("dead letter %q = %q", dead.Key, dead.Value)
	}
	t.Logf("%s: alert and dead letter back %v after start", wantSecurity, time.Since(t0).Round(time.Millisecond))

	stop()
	waitExit(t, "run", done, &errb, 30*time.Second)
	if logs := errb.String(); !strings.Contains(logs, `"security":"`+wantSecurity+`"`) {
		t.Errorf("the start log does not say %q:\n%s", wantSecurity, logs)
	}
}

// loadTestKafka loads the kafka section of file, with brokers.
func loadTestKafka(t *testing.T, file, brokers string) KafkaConfig {
	t.Helper()
	cfg, err := loadConfig(file, func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.Brokers = []string{brokers}
	return cfg.Kafka
}

// createSecuredTopics creates topics through d's listener.
func createSecuredTopics(t *testing.T, brokers string, d *kafka.Dialer, partitions int, names ...string) {
	t.Helper()
	tr := transport(d)
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(brokers), Timeout: 30 * time.Second, Transport: tr}
	req := &kafka.CreateTopicsRequest{}
	for _, n := range names {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: n, NumPartitions: partitions, ReplicationFactor: 1})
	}
	resp, err := c.CreateTopics(t.Context(), req)
	if err != nil {
		t.Fatalf("create topics through %s: %v", brokers, err)
	}
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			t.Fatalf("create topic %s: %v", name, err)
		}
	}
}

// readMessage reads the first record of partition 0 of topic through d.
func readMessage(ctx context.Context, brokers string, d *kafka.Dialer, topic string) (kafka.Message, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokers}, Dialer: d, Topic: topic, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	return r.ReadMessage(ctx)
}

// readOne is readMessage failing the test on error.
func readOne(t *testing.T, brokers string, d *kafka.Dialer, topic string) kafka.Message {
	t.Helper()
	m, err := readMessage(t.Context(), brokers, d, topic)
	if err != nil {
		t.Fatalf("read %s: %v", topic, err)
	}
	return m
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestSecurityConfigErrors: wrong kafka.tls and kafka.sasl settings fail
// at start-up (here --print-config) naming the key and what is wrong.
func TestSecurityConfigErrors(t *testing.T) {
	f := kafkatest.SecurityFiles(t)
	dir := t.TempDir()
	notPEM := writeTemp(t, "not.pem", "hello\n")
	badCert := writeTemp(t, "bad.pem", "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n")
	encrypted := writeTemp(t, "enc.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\naGVsbG8=\n-----END ENCRYPTED PRIVATE KEY-----\n")
	tlsOn := func(keys string) string { return "kafka:\n  tls:\n    enabled: true\n" + keys }
	for _, c := range []struct {
		name string
		file string
		env  map[string]string
		want string
	}{
		{"missing CA file", tlsOn("    ca_file: /nonexistent/ca.pem\n"), nil,
			`config kafka.tls.ca_file: file "/nonexistent/ca.pem" does not exist`},
		{"CA file not PEM", tlsOn("    ca_file: " + notPEM + "\n"), nil,
			`config kafka.tls.ca_file: "` + notPEM + `" holds no PEM certificate`},
		{"CA file with a broken certificate", tlsOn("    ca_file: " + badCert + "\n"), nil,
			`config kafka.tls.ca_file: "` + badCert + `": certificate 1 is not valid`},
		{"CA file a directory", tlsOn("    ca_file: " + dir + "\n"), nil,
			`config kafka.tls.ca_file: "` + dir + `" is a directory, not a PEM file`},
		{"certificate without key", tlsOn("    cert_file: " + f.CertFile + "\n"), nil,
			"config kafka.tls.key_file: empty, but kafka.tls.cert_file is set"},
		{"key without certificate", tlsOn("    key_file: " + f.KeyFile + "\n"), nil,
			"config kafka.tls.cert_file: empty, but kafka.tls.key_file is set"},
		{"missing key file", tlsOn("    cert_file: " + f.CertFile + "\n    key_file: /nonexistent/client.key\n"), nil,
			`config kafka.tls.key_file: file "/nonexistent/client.key" does not exist`},
		{"certificate file without a certificate", tlsOn("    cert_file: " + f.KeyFile + "\n    key_file: " + f.KeyFile + "\n"), nil,
			"config kafka.tls.cert_file: \"" + f.KeyFile + "\" holds no PEM certificate"},
		{"key file without a key", tlsOn("    cert_file: " + f.CertFile + "\n    key_file: " + f.CertFile + "\n"), nil,
			"config kafka.tls.key_file: \"" + f.CertFile + "\" holds no PEM private key"},
		{"encrypted key", tlsOn("    cert_file: " + f.CertFile + "\n    key_file: " + encrypted + "\n"), nil,
			"config kafka.tls.key_file: \"" + encrypted + "\" is encrypted"},
		{"key of another certificate", tlsOn("    cert_file: " + f.CertFile + "\n    key_file: " + f.OtherKeyFile + "\n"), nil,
			"are not a certificate and its private key: tls: private key does not match public key"},
		{"TLS key without enabled", "kafka:\n  tls:\n    ca_file: " + f.CAFile + "\n", nil,
			"config kafka.tls.ca_file: set, but kafka.tls.enabled is false; set kafka.tls.enabled: true"},
		{"TLS enabled not a bool", "kafka: {tls: {enabled: yes-please}}", nil,
			`config kafka.tls.enabled: "yes-please" is not true or false`},
		{"CA file from a variable", "", map[string]string{"CHURNFLOW_KAFKA_TLS_ENABLED": "true", "CHURNFLOW_KAFKA_TLS_CA_FILE": "/nonexistent/ca.pem"},
			`config kafka.tls.ca_file: file "/nonexistent/ca.pem" does not exist (set by CHURNFLOW_KAFKA_TLS_CA_FILE)`},
		{"unknown mechanism", "kafka: {sasl: {mechanism: gssapi, username: u, password: p}}", nil,
			`config kafka.sasl.mechanism: "gssapi" is not one of plain, scram-sha-256, scram-sha-512 (empty: no SASL)`},
		{"mechanism from a variable", "", map[string]string{"CHURNFLOW_KAFKA_SASL_MECHANISM": "oauthbearer"},
			`config kafka.sasl.mechanism: "oauthbearer" is not one of plain, scram-sha-256, scram-sha-512 (empty: no SASL) (set by CHURNFLOW_KAFKA_SASL_MECHANISM)`},
		{"mechanism without username", "kafka: {sasl: {mechanism: scram-sha-256, password: p}}", nil,
			"config kafka.sasl.username: empty; mechanism scram-sha-256 needs a username and a password"},
		{"mechanism without password", "kafka: {sasl: {mechanism: plain, username: u}}", nil,
			"config kafka.sasl.password: empty; mechanism plain needs a username and a password"},
		{"username without mechanism", "kafka: {sasl: {username: u, password: p}}", nil,
			"config kafka.sasl.mechanism: empty, but kafka.sasl.username is set; give one of plain, scram-sha-256, scram-sha-512"},
		{"unknown TLS key", "kafka: {tls: {ca: x}}", nil,
			"config kafka.tls.ca: unknown key (keys of kafka.tls: enabled, ca_file, cert_file, key_file, server_name, insecure_skip_verify)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"run", "--print-config"}
			if c.file != "" {
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

// TestSecurityConfigFromVariables sets every kafka.tls and kafka.sasl key
// by its CHURNFLOW_KAFKA_* variable and checks the dialer they make; the
// password never shows in --print-config.
func TestSecurityConfigFromVariables(t *testing.T) {
	f := kafkatest.SecurityFiles(t)
	env := map[string]string{
		"CHURNFLOW_KAFKA_TLS_ENABLED":              "true",
		"CHURNFLOW_KAFKA_TLS_CA_FILE":              f.CAFile,
		"CHURNFLOW_KAFKA_TLS_CERT_FILE":            f.CertFile,
		"CHURNFLOW_KAFKA_TLS_KEY_FILE":             f.KeyFile,
		"CHURNFLOW_KAFKA_TLS_SERVER_NAME":          "kafka.internal",
		"CHURNFLOW_KAFKA_TLS_INSECURE_SKIP_VERIFY": "false",
		"CHURNFLOW_KAFKA_SASL_MECHANISM":           "SCRAM-SHA-512",
		"CHURNFLOW_KAFKA_SASL_USERNAME":            "alice",
		"CHURNFLOW_KAFKA_SASL_PASSWORD":            "s3cret-pw",
	}
	got := printConfig(t, env)
	want := TLSConfig{Enabled: true, CAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile, ServerName: "kafka.internal"}
	if got.Kafka.TLS != want {
		t.Errorf("kafka.tls %+v, want %+v", got.Kafka.TLS, want)
	}
	if s := got.Kafka.SASL; s.Mechanism != "SCRAM-SHA-512" || s.Username != "alice" || s.Password != secretMask {
		t.Errorf("kafka.sasl %+v, want the password masked", s)
	}

	cfg, err := loadConfig("", func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := cfg.Kafka.Dialer()
	if err != nil {
		t.Fatal(err)
	}
	if d == nil || d.TLS == nil || d.SASLMechanism == nil {
		t.Fatalf("dialer %+v: want TLS and SASL", d)
	}
	if d.TLS.RootCAs == nil || len(d.TLS.Certificates) != 1 || d.TLS.ServerName != "kafka.internal" || d.TLS.InsecureSkipVerify || d.TLS.MinVersion != tls.VersionTLS12 {
		t.Errorf("tls config: roots %v, %d certificates, server name %q, insecure %v", d.TLS.RootCAs != nil, len(d.TLS.Certificates), d.TLS.ServerName, d.TLS.InsecureSkipVerify)
	}
	if n := d.SASLMechanism.Name(); n != "SCRAM-SHA-512" {
		t.Errorf("mechanism %s", n)
	}
	if tr := transport(d); tr.TLS != d.TLS || tr.SASL != d.SASLMechanism {
		t.Errorf("the transport does not connect as the dialer does")
	}

	// Off by default: the pipeline's plain TCP dialer.
	def := defaultConfig()
	if d, err := def.Kafka.Dialer(); d != nil || err != nil {
		t.Errorf("default dialer %+v, %v; want nil, nil", d, err)
	}
	if s := def.Kafka.security(); s != "plaintext" {
		t.Errorf("default security %q", s)
	}
}

func TestPrintConfigMasksSASLPassword(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
	}{
		{map[string]string{"CHURNFLOW_KAFKA_SASL_PASSWORD": "s3cret-env"}, []string{"--config", writeTemp(t, "c.yaml", "kafka: {sasl: {mechanism: plain, username: u}}\n")}},
		{nil, []string{"--config", writeTemp(t, "d.yaml", "kafka: {sasl: {mechanism: scram-sha-256, username: u, password: s3cret-file}}\n")}},
	} {
		checkMasked(t, c.env, c.args, "password")
	}
}

// TestGenConfigOnlyWithBrokers: gen takes --config for the brokers' TLS
// and SASL, so it refuses it with --out, unless it comes from
// CHURNFLOW_CONFIG (which "churnflow run" reads too).
func TestGenConfigOnlyWithBrokers(t *testing.T) {
	cfg := writeTemp(t, "c.yaml", "kafka: {}\n")
	out := filepath.Join(t.TempDir(), "out.jsonl")
	code, _, stderr := run(t, "", nil, "gen", "--out", out, "--members", "5", "--days", "5", "--config", cfg)
	if code != exitUsage || !strings.Contains(stderr, "--config: only with --brokers") {
		t.Errorf("gen --out --config: exit %d %q", code, stderr)
	}
	code, _, stderr = run(t, "", map[string]string{"CHURNFLOW_CONFIG": cfg}, "gen", "--out", out, "--members", "5", "--days", "5")
	if code != exitOK {
		t.Errorf("gen --out with CHURNFLOW_CONFIG: exit %d %q", code, stderr)
	}
	// A wrong security setting fails before any connection.
	bad := writeTemp(t, "bad.yaml", "kafka: {sasl: {mechanism: plain}}\n")
	code, _, stderr = run(t, "", nil, "gen", "--brokers", "127.0.0.1:1", "--members", "5", "--config", bad)
	if code != exitUsage || !strings.Contains(stderr, "config kafka.sasl.username: empty") {
		t.Errorf("gen with a bad kafka.sasl: exit %d %q", code, stderr)
	}
}
