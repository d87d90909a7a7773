package main

// Kafka security: the kafka.tls and kafka.sasl sections, the *kafka.Dialer
// they make, and what to tell the operator when a broker refuses it.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// TLSConfig is the "kafka.tls" section: TLS to the brokers (Kafka's SSL
// and SASL_SSL listeners). The zero value is plain TCP.
type TLSConfig struct {
	// Enabled connects with TLS. The other keys need it.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CA certificates that may sign the
	// brokers' certificates. Empty: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate (with its chain)
	// and its unencrypted private key, for listeners that require one
	// (ssl.client.auth=required). Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the brokers' certificates must hold. Empty:
	// the host of the address dialled.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any broker certificate: for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// SASLConfig is the "kafka.sasl" section: SASL authentication to the
// brokers (Kafka's SASL_PLAINTEXT and SASL_SSL listeners). The zero value
// authenticates nobody.
type SASLConfig struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512 (upper case
	// works too). Empty: no SASL.
	Mechanism string `yaml:"mechanism"`
	// Username and Password are the credentials; both are needed with a
	// mechanism.
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
}

// SASL mechanisms, as kafka.sasl.mechanism names them.
const (
	saslPlain       = "plain"
	saslSCRAMSHA256 = "scram-sha-256"
	saslSCRAMSHA512 = "scram-sha-512"
)

var saslMechanisms = []string{saslPlain, saslSCRAMSHA256, saslSCRAMSHA512}

// dialTimeout bounds a broker connection's set-up (TCP, TLS, SASL), as the
// pipeline's default dialer does.
const dialTimeout = 10 * time.Second

// Dialer returns the dialer of the kafka.tls and kafka.sasl sections, or
// nil when both are off (the pipeline's plain TCP default). The error names
// the key that is wrong.
func (k *KafkaConfig) Dialer() (*kafka.Dialer, error) {
	tc, err := k.TLS.build()
	if err != nil {
		return nil, err
	}
	mech, err := k.SASL.build()
	if err != nil {
		return nil, err
	}
	if tc == nil && mech == nil {
		return nil, nil
	}
	return &kafka.Dialer{Timeout: dialTimeout, DualStack: true, TLS: tc, SASLMechanism: mech}, nil
}

// transport returns a kafka.Transport that connects as d does (a nil d:
// plain TCP).
func transport(d *kafka.Dialer) *kafka.Transport {
	if d == nil {
		return &kafka.Transport{}
	}
	return &kafka.Transport{Dial: d.DialFunc, DialTimeout: d.Timeout, TLS: d.TLS, SASL: d.SASLMechanism, ClientID: d.ClientID}
}

// security describes the connection settings for logs: "plaintext", "tls",
// "sasl scram-sha-256", "tls+sasl plain".
func (k *KafkaConfig) security() string {
	var parts []string
	if k.TLS.Enabled {
		parts = append(parts, "tls")
	}
	if m := strings.ToLower(k.SASL.Mechanism); m != "" {
		parts = append(parts, "sasl "+m)
	}
	if len(parts) == 0 {
		return "plaintext"
	}
	return strings.Join(parts, "+")
}

// build returns the TLS configuration, nil when TLS is off.
func (t *TLSConfig) build() (*tls.Config, error) {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("config kafka.tls.%s: %s", key, fmt.Sprintf(format, args...))
	}
	if !t.Enabled {
		for _, s := range []struct{ key, v string }{
			{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"server_name", t.ServerName},
		} {
			if s.v != "" {
				return nil, bad(s.key, "set, but kafka.tls.enabled is false; set kafka.tls.enabled: true (CHURNFLOW_KAFKA_TLS_ENABLED=true) to connect with TLS, or leave %s empty", s.key)
			}
		}
		if t.InsecureSkipVerify {
			return nil, bad("insecure_skip_verify", "true, but kafka.tls.enabled is false; set kafka.tls.enabled: true to connect with TLS")
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		data, err := readPEMFile("ca_file", t.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		n := 0
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			n++
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, bad("ca_file", "%q: certificate %d is not valid: %v", t.CAFile, n, err)
			}
			pool.AddCert(cert)
		}
		if n == 0 {
			return nil, bad("ca_file", "%q holds no PEM certificate (want -----BEGIN CERTIFICATE----- blocks: the CA that signed the brokers' certificates)", t.CAFile)
		}
		c.RootCAs = pool
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		return nil, bad("key_file", "empty, but kafka.tls.cert_file is set; give the client certificate's private key (PEM), or neither")
	case t.CertFile == "" && t.KeyFile != "":
		return nil, bad("cert_file", "empty, but kafka.tls.key_file is set; give the client certificate (PEM), or neither")
	case t.CertFile != "":
		certPEM, err := readPEMFile("cert_file", t.CertFile)
		if err != nil {
			return nil, err
		}
		keyPEM, err := readPEMFile("key_file", t.KeyFile)
		if err != nil {
			return nil, err
		}
		if !hasPEM(certPEM, func(typ string) bool { return typ == "CERTIFICATE" }) {
			return nil, bad("cert_file", "%q holds no PEM certificate (want a -----BEGIN CERTIFICATE----- block)", t.CertFile)
		}
		if hasPEM(keyPEM, func(typ string) bool { return typ == "ENCRYPTED PRIVATE KEY" }) || strings.Contains(string(keyPEM), "Proc-Type: 4,ENCRYPTED") {
			return nil, bad("key_file", "%q is encrypted; give the key unencrypted (openssl pkey -in KEY -out KEY.plain), kept readable only by churnflow", t.KeyFile)
		}
		if !hasPEM(keyPEM, func(typ string) bool { return strings.HasSuffix(typ, "PRIVATE KEY") }) {
			return nil, bad("key_file", "%q holds no PEM private key (want a -----BEGIN PRIVATE KEY----- block)", t.KeyFile)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, bad("cert_file", "%q and kafka.tls.key_file %q are not a certificate and its private key: %v", t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// readPEMFile reads a file of the kafka.tls section, saying what is wrong
// with it in the key's name.
func readPEMFile(key, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		return data, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("config kafka.tls.%s: file %q does not exist", key, path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("config kafka.tls.%s: file %q is not readable (permission denied)", key, path)
	case errors.Is(err, syscall.EISDIR):
		return nil, fmt.Errorf("config kafka.tls.%s: %q is a directory, not a PEM file", key, path)
	}
	return nil, fmt.Errorf("config kafka.tls.%s: read %q: %w", key, path, err)
}

// hasPEM reports whether data holds a PEM block of a type match accepts.
func hasPEM(data []byte, match func(typ string) bool) bool {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false
		}
		if match(b.Type) {
			return true
		}
	}
}

// build returns the SASL mechanism, nil when SASL is off.
func (s *SASLConfig) build() (sasl.Mechanism, error) {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("config kafka.sasl.%s: %s", key, fmt.Sprintf(format, args...))
	}
	m := strings.ToLower(strings.TrimSpace(s.Mechanism))
	if m == "" {
		switch {
		case s.Username != "":
			return nil, bad("mechanism", "empty, but kafka.sasl.username is set; give one of %s", strings.Join(saslMechanisms, ", "))
		case s.Password != "":
			return nil, bad("mechanism", "empty, but kafka.sasl.password is set; give one of %s", strings.Join(saslMechanisms, ", "))
		}
		return nil, nil
	}
	if !oneOf(m, saslMechanisms) {
		return nil, bad("mechanism", "%q is not one of %s (empty: no SASL)", s.Mechanism, strings.Join(saslMechanisms, ", "))
	}
	if s.Username == "" {
		return nil, bad("username", "empty; mechanism %s needs a username and a password", m)
	}
	if s.Password == "" {
		return nil, bad("password", "empty; mechanism %s needs a username and a password (CHURNFLOW_KAFKA_SASL_PASSWORD keeps it out of the file)", m)
	}
	if m == saslPlain {
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	}
	algo := scram.SHA256
	if m == saslSCRAMSHA512 {
		algo = scram.SHA512
	}
	mech, err := scram.Mechanism(algo, s.Username, s.Password)
	if err != nil {
		// The library's message quotes the password: never show it.
		if strings.Contains(err.Error(), "password") {
			return nil, bad("password", "not usable with %s (SASLprep rejects it: it holds prohibited or unassigned characters)", m)
		}
		return nil, bad("username", "%q is not usable with %s (SASLprep rejects it: it holds prohibited or unassigned characters)", s.Username, m)
	}
	return mech, nil
}

// explainConnectError is explainSecurityError for the first connection to
// a broker, where a connection closed at once most likely means a listener
// that expects TLS or SASL met a client that does not use them (or the
// other way round): it says so.
func (k *KafkaConfig) explainConnectError(err error) (hint string, ok bool) {
	if hint, ok := k.explainSecurityError(err); ok {
		return hint, true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Sprintf("the broker closed the connection (connecting with %s): a listener that expects TLS or SASL closes connections that do not use them, and so does a plaintext one on TLS; check kafka.tls and kafka.sasl against the listener", k.security()), true
	}
	return "", false
}

// explainSecurityError says what to check when err (from dialling or
// talking to a broker) comes from TLS or SASL, naming the keys to look at;
// ok is false for other errors.
func (k *KafkaConfig) explainSecurityError(err error) (hint string, ok bool) {
	var (
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		remote     *net.OpError
		record     tls.RecordHeaderError
	)
	caFile := "the system's roots: give the CA in kafka.tls.ca_file"
	if k.TLS.CAFile != "" {
		caFile = fmt.Sprintf("kafka.tls.ca_file %q", k.TLS.CAFile)
	}
	mech := strings.ToLower(k.SASL.Mechanism)
	switch {
	case errors.Is(err, kafka.SASLAuthenticationFailed):
		return fmt.Sprintf("SASL authentication failed: the broker rejected user %q with mechanism %s; check kafka.sasl.username and kafka.sasl.password (CHURNFLOW_KAFKA_SASL_PASSWORD), and that the user exists for %s on the broker", k.SASL.Username, mech, mech), true
	case errors.Is(err, kafka.UnsupportedSASLMechanism):
		if mech == "" {
			return "the listener wants SASL: set kafka.sasl (mechanism, username, password)", true
		}
		return fmt.Sprintf("SASL authentication failed: the listener does not enable mechanism %s (broker setting sasl.enabled.mechanisms); set kafka.sasl.mechanism to one it enables", mech), true
	case errors.Is(err, kafka.IllegalSASLState):
		return "SASL authentication failed: the listener does not take SASL (is it a PLAINTEXT or SSL listener?); leave kafka.sasl.mechanism empty, or give the address of a SASL listener in kafka.brokers", true
	case errors.As(err, &unknownCA):
		return fmt.Sprintf("TLS: the broker's certificate is not signed by a CA churnflow trusts (%s); give the CA that signed the brokers' certificates in kafka.tls.ca_file", caFile), true
	case errors.As(err, &hostErr):
		return fmt.Sprintf("TLS: the broker's certificate is not valid for %q (the host dialled, or kafka.tls.server_name); give broker addresses the certificate names, or set kafka.tls.server_name to a name it holds", hostErr.Host), true
	case errors.As(err, &invalidErr):
		return fmt.Sprintf("TLS: the broker's certificate is not valid (%v); renew it, or check the clock", invalidErr), true
	case errors.As(err, &remote) && remote.Op == "remote error":
		// A TLS alert from the broker ("remote error: tls: bad certificate").
		if !strings.Contains(remote.Err.Error(), "certificate") {
			return "TLS: the broker ended the handshake; check kafka.tls against the listener's TLS settings", true
		}
		if k.TLS.CertFile == "" {
			return "TLS: the broker requires a client certificate (ssl.client.auth=required) and none is configured; give kafka.tls.cert_file and kafka.tls.key_file", true
		}
		return fmt.Sprintf("TLS: the broker rejected the client certificate kafka.tls.cert_file %q; it must be signed by a CA in the broker's truststore, valid now and for client authentication", k.TLS.CertFile), true
	case errors.As(err, &record):
		return "TLS: the broker did not answer TLS: is the address a TLS (SSL, SASL_SSL) listener? If not, set kafka.tls.enabled: false", true
	}
	return "", false
}
