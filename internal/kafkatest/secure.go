package kafkatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Secure is a single-node Kafka with, besides its PLAINTEXT listener
// (Bootstrap, which the broker also uses for itself), two secured ones.
// StartSecure generates the certificates and the user.
type Secure struct {
	*Cluster
	// SSL is the TLS listener (host:port). It requires a client
	// certificate signed by CAFile (ssl.client.auth=required).
	SSL string
	// SASL is the SASL_PLAINTEXT listener (host:port), with PLAIN,
	// SCRAM-SHA-256 and SCRAM-SHA-512 enabled.
	SASL string
	// CAFile is the test CA (PEM): it signed the broker's certificate
	// (for 127.0.0.1 and localhost) and CertFile.
	CAFile string
	// CertFile and KeyFile are a client certificate (PEM) the SSL listener
	// accepts and its unencrypted PKCS#8 private key (PEM).
	CertFile, KeyFile string
	// OtherCAFile is a CA (PEM) that signed nothing the broker knows: a
	// client that trusts only it rejects the broker's certificate.
	OtherCAFile string
	// OtherCertFile and OtherKeyFile are a client certificate signed by
	// OtherCAFile's CA, which the SSL listener rejects.
	OtherCertFile, OtherKeyFile string
	// User and Password are a SASL user known to all three mechanisms.
	User, Password string
	// Dir holds the files above and the broker's: broker.pem (its key and
	// chain), ca.pem (its truststore) and users.
	Dir string
}

// StartSecure starts a single-node Kafka with an SSL and a SASL_PLAINTEXT
// listener next to its PLAINTEXT one (scripts/kafka-local.sh up --secure),
// for t, like StartCluster: it is stopped when the test ends. The
// certificates (ECDSA P-256, valid for a day) and a random password are
// generated per call.
func StartSecure(t testing.TB) *Secure {
	t.Helper()
	s := SecurityFiles(t)
	c, lines := startCluster(t, 1, "--secure", s.Dir)
	s.Cluster = c
	s.SSL, s.SASL = lines["SSL"], lines["SASL_PLAINTEXT"]
	if s.SSL == "" || s.SASL == "" {
		t.Fatalf("kafkatest: no SSL= or SASL_PLAINTEXT= line from %s up --secure (got %v)", Script(), lines)
	}
	t.Logf("kafkatest: secured listeners SSL %s (client certificate required), SASL_PLAINTEXT %s (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", s.SSL, s.SASL)
	return s
}

// SecurityFiles writes the files of a secured broker (the CAs,
// certificates and user of Secure) into a new temporary directory, without
// starting a broker: Cluster, SSL and SASL are empty. Dir is the
// directory, as scripts/kafka-local.sh up --secure takes it.
func SecurityFiles(t testing.TB) *Secure {
	t.Helper()
	s, err := writeSecurity(t.TempDir())
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return s
}

// writeSecurity writes what scripts/kafka-local.sh up --secure DIR reads
// (broker.pem, ca.pem, users) and the client's files into dir.
func writeSecurity(dir string) (*Secure, error) {
	ca, err := newCA("churnflow kafkatest CA")
	if err != nil {
		return nil, err
	}
	other, err := newCA("churnflow kafkatest other CA")
	if err != nil {
		return nil, err
	}
	broker, err := ca.issue("127.0.0.1", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	client, err := ca.issue("churnflow-client", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	stranger, err := other.issue("churnflow-stranger", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	pw := make([]byte, 12)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	s := &Secure{
		CAFile:        filepath.Join(dir, "ca.pem"),
		CertFile:      filepath.Join(dir, "client.crt"),
		KeyFile:       filepath.Join(dir, "client.key"),
		OtherCAFile:   filepath.Join(dir, "other-ca.pem"),
		OtherCertFile: filepath.Join(dir, "stranger.crt"),
		OtherKeyFile:  filepath.Join(dir, "stranger.key"),
		User:          "churnflow",
		Password:      hex.EncodeToString(pw),
		Dir:           dir,
	}
	files := []struct {
		path string
		data []byte
	}{
		// The broker's keystore: its key, then its chain.
		{filepath.Join(dir, "broker.pem"), concat(broker.keyPEM, broker.certPEM, ca.certPEM)},
		{s.CAFile, ca.certPEM},
		{filepath.Join(dir, "users"), []byte(s.User + " " + s.Password + "\n")},
		{s.CertFile, client.certPEM},
		{s.KeyFile, client.keyPEM},
		{s.OtherCAFile, other.certPEM},
		{s.OtherCertFile, stranger.certPEM},
		{s.OtherKeyFile, stranger.keyPEM},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// keyPair is a certificate and its key, parsed and as PEM.
type keyPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte // PKCS#8, as Kafka's PEM keystores want it
}

func newCA(name string) (*keyPair, error) {
	return newKeyPair(&x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
	}, nil)
}

// issue returns a certificate signed by ca. A name that is an IP address
// goes in the IP SANs (with localhost as a DNS SAN), any other in the DNS
// SANs.
func (ca *keyPair) issue(name string, usage x509.ExtKeyUsage) (*keyPair, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses, tmpl.DNSNames = []net.IP{ip}, []string{"localhost"}
	} else {
		tmpl.DNSNames = []string{name}
	}
	return newKeyPair(tmpl, ca)
}

// newKeyPair makes a key and a certificate from tmpl, signed by parent
// (nil: self-signed).
func newKeyPair(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	}, nil
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
