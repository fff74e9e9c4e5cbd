package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The deployment files are checked against the binary they deploy, as far as it can be
// done without a container engine or a cluster.

// defaultPorts returns the port numbers of the listeners' default addresses
// (name → port), from the serve flags.
func defaultPorts(t *testing.T) map[string]int {
	t.Helper()
	fs := newFlagSet(&options{})
	ports := map[string]int{}
	for _, name := range []string{"http-addr", "rtmp-addr", "rtmps-addr", "rtsp-addr", "rtsps-addr", "rtsp-udp-addr", "webrtc-addr"} {
		_, p, err := net.SplitHostPort(fs.Lookup(name).DefValue)
		if err != nil {
			t.Fatal(err)
		}
		ports[name], _ = strconv.Atoi(p)
	}
	return ports
}

// TestDeployKubernetes: the manifests parse; the container ports are the listeners'
// defaults with the right protocol; probes hit /healthz and /readyz; every ConfigMap key
// is the environment variable of an existing flag.
func TestDeployKubernetes(t *testing.T) {
	data, err := os.ReadFile("../../deploy/kubernetes/relaycast.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fs := newFlagSet(&options{})
	ports := defaultPorts(t)
	want := map[string]string{ // container port name → "port/protocol"
		"http": strconv.Itoa(ports["http-addr"]) + "/TCP", "rtmp": strconv.Itoa(ports["rtmp-addr"]) + "/TCP",
		"rtmps": strconv.Itoa(ports["rtmps-addr"]) + "/TCP", "rtsp": strconv.Itoa(ports["rtsp-addr"]) + "/TCP",
		"rtsps": strconv.Itoa(ports["rtsps-addr"]) + "/TCP", "rtp": strconv.Itoa(ports["rtsp-udp-addr"]) + "/UDP",
		"rtcp": strconv.Itoa(ports["rtsp-udp-addr"]+1) + "/UDP", "webrtc-udp": strconv.Itoa(ports["webrtc-addr"]) + "/UDP",
		"webrtc-tcp": strconv.Itoa(ports["webrtc-addr"]) + "/TCP",
	}
	kinds := map[string]bool{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("relaycast.yaml: %v", err)
		}
		kind, _ := doc["kind"].(string)
		kinds[kind] = true
		switch kind {
		case "ConfigMap":
			for k := range doc["data"].(map[string]any) {
				name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "RELAYCAST_")), "_", "-")
				if !strings.HasPrefix(k, "RELAYCAST_") || fs.Lookup(name) == nil {
					t.Errorf("ConfigMap key %s is not the variable of a serve flag", k)
				}
			}
		case "StatefulSet":
			spec := doc["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
			c := spec["containers"].([]any)[0].(map[string]any)
			got := map[string]string{}
			for _, p := range c["ports"].([]any) {
				pm := p.(map[string]any)
				got[pm["name"].(string)] = strconv.Itoa(pm["containerPort"].(int)) + "/" + pm["protocol"].(string)
			}
			for name, w := range want {
				if got[name] != w {
					t.Errorf("container port %s = %q, want %q (the listener's default)", name, got[name], w)
				}
			}
			for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
				p, _ := c[probe].(map[string]any)
				if g, _ := p["httpGet"].(map[string]any); g == nil || g["path"] != path || g["port"] != "http" {
					t.Errorf("%s = %v, want GET %s on the http port", probe, p, path)
				}
			}
		}
	}
	for _, k := range []string{"ConfigMap", "StatefulSet", "Service", "PodDisruptionBudget"} {
		if !kinds[k] {
			t.Errorf("no %s in the manifests", k)
		}
	}
}

// TestDeployDockerfile: the image exposes the listeners' default ports and runs serve as
// a non-root user.
func TestDeployDockerfile(t *testing.T) {
	data, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var exposed []string
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "EXPOSE "); ok {
			exposed = append(exposed, strings.Fields(rest)...)
		}
	}
	sort.Strings(exposed)
	p := defaultPorts(t)
	want := []string{strconv.Itoa(p["http-addr"]), strconv.Itoa(p["rtmp-addr"]), strconv.Itoa(p["rtmps-addr"]),
		strconv.Itoa(p["rtsp-addr"]), strconv.Itoa(p["rtsps-addr"]), strconv.Itoa(p["rtsp-udp-addr"]) + "/udp",
		strconv.Itoa(p["rtsp-udp-addr"]+1) + "/udp", strconv.Itoa(p["webrtc-addr"]) + "/udp", strconv.Itoa(p["webrtc-addr"])}
	sort.Strings(want)
	if strings.Join(exposed, " ") != strings.Join(want, " ") {
		t.Errorf("EXPOSE %v, want %v", exposed, want)
	}
	for _, must := range []string{"USER nonroot", `ENTRYPOINT ["/relaycast", "serve"`, "CGO_ENABLED=0", "distroless"} {
		if !strings.Contains(string(data), must) {
			t.Errorf("Dockerfile lacks %q", must)
		}
	}
}

// TestDeploySystemd: systemd-analyze verifies the unit (with ExecStart pointing at a
// freshly built binary), and the flags the unit passes exist.
func TestDeploySystemd(t *testing.T) {
	requireTool(t, "systemd-analyze")
	unit, err := os.ReadFile("../../deploy/systemd/relaycast.service")
	if err != nil {
		t.Fatal(err)
	}
	bin := relaycastBinary(t)
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/relaycast", bin)
	path := filepath.Join(t.TempDir(), "relaycast.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	// Complaints about other units on the machine are not ours.
	var ours []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "relaycast.service") {
			ours = append(ours, l)
		}
	}
	if len(ours) > 0 || (err != nil && len(bytes.TrimSpace(out)) == 0) {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	fs := newFlagSet(&options{})
	execLine := regexp.MustCompile(`(?m)^ExecStart=.*$`).FindString(text)
	if execLine == "" {
		t.Fatal("no ExecStart")
	}
	for _, m := range regexp.MustCompile(`--([a-z-]+)`).FindAllStringSubmatch(execLine, -1) {
		if fs.Lookup(m[1]) == nil {
			t.Errorf("the unit passes --%s, which serve does not know", m[1])
		}
	}
}

// TestDeployGrafana: every series the dashboard queries is one relaycast exports.
func TestDeployGrafana(t *testing.T) {
	data, err := os.ReadFile("../../deploy/grafana/relaycast-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var src bytes.Buffer
	for _, dir := range []string{"../../control", "../../relay", "../../vod", "."} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, _ := os.ReadFile(f)
			src.Write(b)
		}
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`relaycast_[a-z_]+`).FindAllString(string(data), -1) {
		names[strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count")] = true
	}
	if len(names) < 10 {
		t.Fatalf("the dashboard queries only %d series", len(names))
	}
	for n := range names {
		if !bytes.Contains(src.Bytes(), []byte(`"`+n+`"`)) {
			t.Errorf("the dashboard queries %s, which relaycast does not export", n)
		}
	}
}
