package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestOptionsPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "relaycast.yaml")
	if err := os.WriteFile(file, []byte("http-addr: \":9000\"\nrtmp-addr: \":2000\"\ncors: true\nreconnect-grace: 5s\nlog-level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"RELAYCAST_CONFIG":    file,
		"RELAYCAST_RTMP_ADDR": ":3000",
		"RELAYCAST_RTSP_ADDR": "", // set and empty: the listener is off
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	o, err := parseOptions([]string{"--log-level", "warn"}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"flag beats file", o.LogLevel, "warn"},
		{"env beats file", o.RTMPAddr, ":3000"},
		{"file beats default", o.HTTPAddr, ":9000"},
		{"empty env turns off", o.RTSPAddr, ""},
		{"default", o.RTMPSAddr, ":1936"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q want %q", c.name, c.got, c.want)
		}
	}
	if !o.CORS || o.ReconnectGrace != 5*time.Second || !o.RTMPPlainEnabled {
		t.Errorf("cors=%v grace=%v plain=%v", o.CORS, o.ReconnectGrace, o.RTMPPlainEnabled)
	}
}

func TestOptionsErrors(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	for _, args := range [][]string{
		{"--log-format", "xml"},
		{"--hls-variant", "dash"},
		{"--tls-cert", "a.pem"},
		{"--no-such-flag"},
		{"stray"},
	} {
		if _, err := parseOptions(args, none); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("htp-addr: x\n"), 0o600)
	if _, err := parseOptions([]string{"--config", bad}, none); err == nil {
		t.Error("unknown config key accepted")
	}
}

func TestSelfSignedCertificateIsReused(t *testing.T) {
	dir := t.TempDir()
	c1, gen1, err := loadTLS("", "", dir)
	if err != nil || !gen1 {
		t.Fatalf("first start: generated=%v err=%v", gen1, err)
	}
	c2, gen2, err := loadTLS("", "", dir)
	if err != nil || gen2 {
		t.Fatalf("second start: generated=%v err=%v", gen2, err)
	}
	if string(c1.Certificates[0].Certificate[0]) != string(c2.Certificates[0].Certificate[0]) {
		t.Fatal("the certificate changed between starts")
	}
	if fi, err := os.Stat(filepath.Join(dir, "tls", "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
}
