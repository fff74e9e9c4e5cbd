package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
)

var streamFlags = []cliFlag{
	{name: "title", field: "title", help: "stream title"},
	{name: "description", field: "description", help: "description"},
	{name: "public", field: "is_public", kind: "bool", help: "listed publicly and watchable without a token"},
	{name: "rtmp-enabled", field: "rtmp_enabled", kind: "bool", help: "accept plain RTMP (rtmp_ tokens) for this stream"},
	{name: "record", field: "record", kind: "bool", help: "record to your VOD storage while live"},
}

var relayFlags = []cliFlag{
	{name: "platform", field: "platform", help: "twitch, youtube, kick, portal or custom"},
	{name: "name", field: "name", help: "display name"},
	{name: "url", field: "rtmp_url", help: "rtmp:// or rtmps:// ingest URL (default: the platform's)"},
	{name: "key", field: "stream_key", help: "the destination's stream key"},
	{name: "enabled", field: "enabled", kind: "bool", help: "relay when live"},
	{name: "tls-verify", field: "tls_verify", kind: "bool", help: "verify an rtmps destination's certificate"},
}

var storageFlags = []cliFlag{
	{name: "host", field: "host", help: "SFTP host"},
	{name: "port", field: "port", kind: "int", help: "SSH port (22)"},
	{name: "username", field: "username", help: "SSH user"},
	{name: "auth-method", field: "auth_method", help: "password or key"},
	{name: "password", field: "password", help: "SSH password"},
	{name: "remote-path", field: "remote_path", help: "directory for the recordings"},
	{name: "recording", field: "recording_enabled", kind: "bool", help: "record streams to this storage"},
}

var (
	streamCols = []string{"id", "title", "is_live", "viewer_count", "is_public", "playback_id"}
	relayCols  = []string{"id", "name", "platform", "enabled", "state", "bytes_sent", "reconnects", "last_error"}
)

// cliCommands is every client command, by group.
var cliCommands = []*cliCommand{
	{group: "login", help: "log in and save the server and token (--username, --password or RELAYCAST_PASSWORD, or --api-key)",
		flags: []cliFlag{{name: "username", help: "user name"}, {name: "password", help: "password (else RELAYCAST_PASSWORD)"},
			{name: "api-key", help: "save this API key (portal_...) instead of logging in"}},
		run: runLogin},
	{group: "logout", help: "forget the saved server and token", run: func(env cliEnv, _ *apiClient, _ []string, _ *flag.FlagSet) error {
		err := os.Remove(configPath(env))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}},

	{group: "streams", verb: "list", help: "your streams", method: http.MethodGet, path: "/api/streams", list: "streams", columns: streamCols},
	{group: "streams", verb: "get", args: []string{"id"}, help: "one stream", method: http.MethodGet, path: "/api/streams/{0}"},
	{group: "streams", verb: "create", help: "create a stream (the publish key is shown once)", method: http.MethodPost, path: "/api/streams", flags: streamFlags},
	{group: "streams", verb: "update", args: []string{"id"}, help: "change a stream", method: http.MethodPut, path: "/api/streams/{0}", flags: streamFlags},
	{group: "streams", verb: "delete", args: []string{"id"}, help: "delete a stream", method: http.MethodDelete, path: "/api/streams/{0}"},
	{group: "streams", verb: "regenerate-key", args: []string{"id"}, help: "new publish key (the old one stops working)", method: http.MethodPost, path: "/api/streams/{0}/regenerate-key"},
	{group: "streams", verb: "rtmp-token", args: []string{"id"}, help: "single-use plain RTMP token (15 min)", method: http.MethodPost, path: "/api/streams/{0}/rtmp-token"},

	{group: "relays", verb: "platforms", help: "relay platforms and their ingest URLs", method: http.MethodGet, path: "/api/relay-platforms",
		list: "platforms", columns: []string{"id", "name", "default_url"}},
	{group: "relays", verb: "list", args: []string{"stream"}, help: "a stream's relays and their status", method: http.MethodGet,
		path: "/api/streams/{0}/relays", list: "relays", columns: relayCols},
	{group: "relays", verb: "add", args: []string{"stream"}, help: "add a relay destination", method: http.MethodPost, path: "/api/streams/{0}/relays", flags: relayFlags},
	{group: "relays", verb: "update", args: []string{"stream", "relay"}, help: "change a relay", method: http.MethodPut, path: "/api/streams/{0}/relays/{1}", flags: relayFlags},
	{group: "relays", verb: "delete", args: []string{"stream", "relay"}, help: "delete a relay", method: http.MethodDelete, path: "/api/streams/{0}/relays/{1}"},

	{group: "vods", verb: "list", help: "recordings on your storage", method: http.MethodGet, path: "/api/vods", list: "files",
		columns: []string{"name", "size", "modified"},
		query:   []cliFlag{{name: "sort", field: "sort", help: "name, size or modified"}, {name: "order", field: "order", help: "asc or desc"}}},
	{group: "vods", verb: "uploads", help: "recording sessions and their upload progress", method: http.MethodGet, path: "/api/vods/uploads",
		list: "sessions", columns: []string{"session", "recording", "chunks_recorded", "chunks_uploaded", "chunks_pending", "last_error"}},
	{group: "vods", verb: "download", args: []string{"name"}, help: "download a recording (-o FILE, default its base name)",
		flags: []cliFlag{{name: "o", help: "output file (- for stdout)"}}, run: runDownload},
	{group: "vods", verb: "delete", args: []string{"name"}, help: "delete a recording", method: http.MethodDelete, path: "/api/vods/{0}"},
	{group: "vods", verb: "storage", help: "your VOD storage settings", method: http.MethodGet, path: "/api/vods/storage"},
	{group: "vods", verb: "storage-set", help: "set the VOD storage (--private-key-file for key auth)", method: http.MethodPost, path: "/api/vods/storage",
		flags: append(append([]cliFlag(nil), storageFlags...), cliFlag{name: "private-key-file", help: "SSH private key file"}), run: runStorageSet},
	{group: "vods", verb: "storage-test", help: "test the VOD storage (pins its host key on first use)", method: http.MethodPost, path: "/api/vods/storage/test"},
	{group: "vods", verb: "storage-delete", help: "remove the VOD storage settings (remote files stay)", method: http.MethodDelete, path: "/api/vods/storage"},

	{group: "keys", verb: "list", help: "your API keys", method: http.MethodGet, path: "/api/api-keys", list: "api_keys",
		columns: []string{"id", "name", "key_prefix", "scopes", "expires_at", "revoked"}},
	{group: "keys", verb: "create", help: "create an API key (shown once)", method: http.MethodPost, path: "/api/api-keys",
		flags: []cliFlag{{name: "name", field: "name", help: "key name"}, {name: "scopes", field: "scopes", help: "comma-separated scopes (default all)"},
			{name: "expires-in-days", field: "expires_in_days", kind: "int", help: "expiry in days"}}},
	{group: "keys", verb: "revoke", args: []string{"id"}, help: "revoke an API key", method: http.MethodPost, path: "/api/api-keys/{0}/revoke"},
	{group: "keys", verb: "delete", args: []string{"id"}, help: "delete an API key", method: http.MethodDelete, path: "/api/api-keys/{0}"},
}

// cliGroups lists the command groups for the main usage text.
func cliGroups() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range cliCommands {
		if !seen[c.group] {
			seen[c.group] = true
			out = append(out, c.group)
		}
	}
	return out
}

func flagString(fs *flag.FlagSet, name string) string {
	if f := fs.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

func runLogin(env cliEnv, c *apiClient, _ []string, fs *flag.FlagSet) error {
	if c.server == "" {
		return errors.New("give --server URL")
	}
	if key := flagString(fs, "api-key"); key != "" {
		c.token = key
		if _, err := c.do(http.MethodGet, "/api/me", nil); err != nil {
			return fmt.Errorf("the API key does not work: %w", err)
		}
		return saveCLIConfig(env, cliConfig{Server: c.server, Token: key})
	}
	user, pass := flagString(fs, "username"), flagString(fs, "password")
	if pass == "" {
		pass = env.getenv("RELAYCAST_PASSWORD")
	}
	if user == "" || pass == "" {
		return errors.New("give --username and --password (or RELAYCAST_PASSWORD), or --api-key")
	}
	c.token = ""
	raw, err := c.do(http.MethodPost, "/api/token", map[string]string{"username": user, "password": pass})
	if err != nil {
		return err
	}
	var tok struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	if err := json.Unmarshal(raw, &tok); err != nil || tok.Token == "" {
		return fmt.Errorf("unexpected answer %q", raw)
	}
	if err := saveCLIConfig(env, cliConfig{Server: c.server, Token: tok.Token}); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "logged in to %s as %s (token expires %s)\n", c.server, user, tok.ExpiresAt)
	return nil
}

func runDownload(env cliEnv, c *apiClient, args []string, fs *flag.FlagSet) error {
	name := args[0]
	resp, err := c.send(http.MethodGet, "/api/vods/download/"+escapePath(name), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out := flagString(fs, "o")
	if out == "" {
		out = path.Base(name)
	}
	var w io.Writer = env.stdout
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return err
	}
	if out != "-" {
		fmt.Fprintf(env.stdout, "%s: %d bytes\n", out, n)
	}
	return nil
}

// escapePath escapes each segment of a slash-separated name.
func escapePath(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func runStorageSet(env cliEnv, c *apiClient, _ []string, fs *flag.FlagSet) error {
	body := map[string]any{}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, f := range storageFlags {
		if given[f.name] {
			body[f.field] = fs.Lookup(f.name).Value.(flag.Getter).Get()
		}
	}
	if p := flagString(fs, "private-key-file"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		body["private_key"] = string(b)
	}
	raw, err := c.do(http.MethodPost, "/api/vods/storage", body)
	if err != nil {
		return err
	}
	return printAnswer(env.stdout, raw, "", nil, flagString(fs, "json") == "true")
}
