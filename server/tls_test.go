package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/server"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ponte test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestService_TLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	srv := testenv.MustStartServerAt(t, filepath.Join(t.TempDir(), "s.db"), server.Config{TLSCert: certFile, TLSKey: keyFile})
	if !strings.HasPrefix(srv.SyncURL(), "wss://") {
		t.Fatalf("sync URL %s, want wss://", srv.SyncURL())
	}
	dialer := &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: 5 * time.Second}
	c := srv.MustOpenClient("anna", client.Options{Dialer: dialer})
	if err := c.Put(context.Background(), "notes", "n1", map[string]any{"text": "over TLS"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(testenv.Context(t, 10*time.Second)); err != nil {
		t.Fatalf("sync over TLS: %v", err)
	}
	plain := "ws://" + strings.TrimPrefix(srv.SyncURL(), "wss://")
	if ws, _, err := websocket.DefaultDialer.Dial(plain, nil); err == nil {
		ws.Close()
		t.Fatal("a TLS server accepted a plain connection")
	}
	if _, err := server.Start(context.Background(), server.Config{Addr: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "x.db"),
		TLSCert: certFile}); err == nil {
		t.Error("a certificate without its key was accepted")
	}
}
