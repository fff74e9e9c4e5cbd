package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLI drives the client commands of the real binary against a running server: login
// saves the server and token (mode 0600), then streams, relays and keys commands work
// with table and JSON output, and API errors reach the user with a non-zero exit.
func TestCLI(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.mustCall(200, "POST", "/api/setup", "", map[string]string{"username": "admin", "password": "correct horse"}, nil)
	conf := filepath.Join(t.TempDir(), "cli.json")
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		cmd := exec.Command(relaycastBinary(t), args...)
		cmd.Env = append(os.Environ(), "RELAYCAST_CLI_CONFIG="+conf, "RELAYCAST_SERVER=", "RELAYCAST_TOKEN=")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("relaycast %s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantCode, out)
		}
		return string(out)
	}

	if out := cli(1, "streams", "list"); !strings.Contains(out, "no server") {
		t.Fatalf("without a server: %s", out)
	}
	if out := cli(1, "login", "--server", s.http, "--username", "admin", "--password", "wrong"); !strings.Contains(out, "HTTP 401") {
		t.Fatalf("wrong password: %s", out)
	}
	cli(0, "login", "--server", s.http, "--username", "admin", "--password", "correct horse")
	if fi, err := os.Stat(conf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved config: %v %v", fi, err)
	}

	var st struct {
		ID         int64  `json:"id"`
		StreamKey  string `json:"stream_key"`
		PlaybackID string `json:"playback_id"`
	}
	if err := json.Unmarshal([]byte(cli(0, "streams", "create", "--title", "From the CLI", "--json")), &st); err != nil || st.StreamKey == "" {
		t.Fatalf("streams create: %+v %v", st, err)
	}
	if out := cli(0, "streams", "list"); !strings.Contains(out, "From the CLI") || !strings.Contains(out, st.PlaybackID) ||
		!strings.HasPrefix(out, "ID") {
		t.Fatalf("streams list:\n%s", out)
	}
	cli(0, "streams", "update", fmt.Sprint(st.ID), "--title", "Renamed", "--public=false")
	var got map[string]any
	s.mustCall(200, "GET", fmt.Sprintf("/api/streams/%d", st.ID), s.login("admin", "correct horse"), nil, &got)
	if got["title"] != "Renamed" || got["is_public"] != false {
		t.Fatalf("after streams update: %v", got)
	}
	if out := cli(0, "relays", "platforms"); !strings.Contains(out, "rtmp://live.twitch.tv/app") {
		t.Fatalf("relays platforms:\n%s", out)
	}
	cli(0, "relays", "add", fmt.Sprint(st.ID), "--platform", "custom", "--name", "backup",
		"--url", "rtmp://127.0.0.1:1/live", "--key", "cli_secret_key")
	out := cli(0, "relays", "list", fmt.Sprint(st.ID))
	if !strings.Contains(out, "backup") || !strings.Contains(out, "idle") || strings.Contains(out, "cli_secret_key") {
		t.Fatalf("relays list:\n%s", out)
	}
	if out := cli(1, "relays", "add", fmt.Sprint(st.ID), "--platform", "custom", "--name", "bad", "--url", "http://x/live", "--key", "k"); !strings.Contains(out, "HTTP 400") {
		t.Fatalf("bad relay URL: %s", out)
	}
	var key struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal([]byte(cli(0, "keys", "create", "--name", "ci", "--json")), &key); err != nil || !strings.HasPrefix(key.APIKey, "portal_") {
		t.Fatalf("keys create: %+v %v", key, err)
	}
	if out := cli(0, "keys", "list", "--token", key.APIKey); !strings.Contains(out, "ci") {
		t.Fatalf("keys list with the new key:\n%s", out)
	}
	if out := cli(1, "vods", "list"); !strings.Contains(out, "HTTP 404") {
		t.Fatalf("vods list without storage: %s", out)
	}
	cli(2, "streams", "get")
	cli(0, "streams", "delete", fmt.Sprint(st.ID))
	cli(0, "logout")
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Fatalf("logout left %s", conf)
	}
}
