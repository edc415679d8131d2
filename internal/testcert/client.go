package testcert

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"testing"
)

// IssueClient writes a client certificate (for TLS client authentication)
// named cn, signed by ca, and its key, as PEM to certFile and keyFile.
func (ca *CA) IssueClient(t testing.TB, cn, certFile, keyFile string, serial int64) {
	t.Helper()
	ca.issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, certFile, keyFile)
}

// WriteCA writes ca's certificate as PEM to path, for clients that read
// their trusted roots from a file.
func (ca *CA) WriteCA(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
}
