package kafkatest_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/churnflow/churnflow/internal/kafkatest"
)

// TestSecurityFiles checks what StartSecure hands the broker and the
// client, without a broker: the broker's keystore (PKCS#8 key, then its
// chain) and certificate verify for 127.0.0.1 against the CA, the client's
// for client authentication, and nothing verifies against the other CA.
func TestSecurityFiles(t *testing.T) {
	s := kafkatest.SecurityFiles(t)
	roots := pool(t, s.CAFile)
	other := pool(t, s.OtherCAFile)

	var blocks []*pem.Block
	for rest := read(t, filepath.Join(s.Dir, "broker.pem")); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(blocks) != 3 || blocks[0].Type != "PRIVATE KEY" || blocks[1].Type != "CERTIFICATE" || blocks[2].Type != "CERTIFICATE" {
		t.Fatalf("broker.pem: want PRIVATE KEY, CERTIFICATE, CERTIFICATE; got %d blocks", len(blocks))
	}
	if _, err := x509.ParsePKCS8PrivateKey(blocks[0].Bytes); err != nil {
		t.Fatalf("broker key is not PKCS#8: %v", err)
	}
	broker, err := x509.ParseCertificate(blocks[1].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := broker.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("broker certificate for %s: %v", host, err)
		}
	}
	if _, err := broker.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: other}); err == nil {
		t.Errorf("the broker certificate verifies against the other CA")
	}

	for _, c := range []struct {
		cert, key string
		roots     *x509.CertPool
		name      string
	}{{s.CertFile, s.KeyFile, roots, "client"}, {s.OtherCertFile, s.OtherKeyFile, other, "stranger"}} {
		pair, err := tls.LoadX509KeyPair(c.cert, c.key)
		if err != nil {
			t.Fatalf("%s key pair: %v", c.name, err)
		}
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: c.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s certificate for client auth: %v", c.name, err)
		}
	}
	if users := strings.Fields(string(read(t, filepath.Join(s.Dir, "users")))); len(users) != 2 || users[0] != s.User || users[1] != s.Password || len(s.Password) < 16 {
		t.Errorf("users file %q, want %q and a random password", users, s.User)
	}
	if again := kafkatest.SecurityFiles(t); again.Password == s.Password {
		t.Errorf("the same password twice")
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pool(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(read(t, path)) {
		t.Fatalf("%s: no certificate", path)
	}
	return p
}
