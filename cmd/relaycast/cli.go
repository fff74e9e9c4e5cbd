package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The CLI: every command other than serve is a thin client of the HTTP API. The server URL
// and the token come from --server/--token, else RELAYCAST_SERVER/RELAYCAST_TOKEN, else
// the file `relaycast login` writes (RELAYCAST_CLI_CONFIG, default
// $XDG_CONFIG_HOME/relaycast/cli.json, mode 0600).

// cliConfig is what `relaycast login` saves.
type cliConfig struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// cliEnv is the CLI's view of the outside world, so that tests can run it in-process.
type cliEnv struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
}

func configPath(env cliEnv) string {
	if p := env.getenv("RELAYCAST_CLI_CONFIG"); p != "" {
		return p
	}
	dir := env.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "."
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "relaycast", "cli.json")
}

func loadCLIConfig(env cliEnv) cliConfig {
	var c cliConfig
	if b, err := os.ReadFile(configPath(env)); err == nil {
		_ = json.Unmarshal(b, &c)
	}
	return c
}

func saveCLIConfig(env cliEnv, c cliConfig) error {
	p := configPath(env)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return os.WriteFile(p, append(b, '\n'), 0o600)
}

// apiClient calls the API and turns its {"error","status"} answers into errors.
type apiClient struct {
	server string
	token  string
	http   *http.Client
}

// apiError is an error answer of the API.
type apiError struct {
	Status int    `json:"status"`
	Msg    string `json:"error"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status) }

// do sends a request with a JSON body (nil: none) and returns the answer's body.
func (c *apiClient) do(method, path string, body any) ([]byte, error) {
	resp, err := c.send(method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// send sends a request and returns the response when its status is 2xx.
func (c *apiClient) send(method, path string, body any) (*http.Response, error) {
	if c.server == "" {
		return nil, errors.New("no server: give --server, set RELAYCAST_SERVER or run relaycast login")
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimRight(c.server, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		ae := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(b, ae) != nil || ae.Msg == "" {
			ae.Msg = strings.TrimSpace(string(b))
			if ae.Msg == "" {
				ae.Msg = http.StatusText(resp.StatusCode)
			}
		}
		return nil, ae
	}
	return resp, nil
}

// cliFlag is a command flag that becomes a field of the JSON body when given.
type cliFlag struct {
	name, field, kind, help string // kind: "string", "bool", "int"
}

// cliCommand is one `relaycast GROUP VERB` command.
type cliCommand struct {
	group, verb string
	args        []string // positional arguments, substituted for {0}, {1}... in path
	help        string
	method      string
	path        string
	flags       []cliFlag
	query       []cliFlag                                                             // flags that go to the query string
	list        string                                                                // JSON key of the list to print as a table ("" for the whole object)
	columns     []string                                                              // table columns (fields of each row)
	run         func(env cliEnv, c *apiClient, args []string, fs *flag.FlagSet) error // custom
}

func (cmd *cliCommand) name() string { return cmd.group + " " + cmd.verb }

func (cmd *cliCommand) usageLine() string {
	s := "relaycast " + cmd.name()
	for _, a := range cmd.args {
		s += " " + strings.ToUpper(a)
	}
	if len(cmd.flags)+len(cmd.query) > 0 {
		s += " [flags]"
	}
	return s
}

// runCLI runs a client command; args start with the group name.
func runCLI(args []string, env cliEnv) int {
	group := args[0]
	var cmds []*cliCommand
	for _, c := range cliCommands {
		if c.group == group {
			cmds = append(cmds, c)
		}
	}
	groupUsage := func(w io.Writer) {
		fmt.Fprintf(w, "usage:\n")
		for _, c := range cmds {
			fmt.Fprintf(w, "  %-58s %s\n", c.usageLine(), c.help)
		}
		fmt.Fprintln(w, "\nglobal flags (before or after the command): --server URL, --token TOKEN, --json")
	}
	if len(args) < 2 || args[1] == "-h" || args[1] == "--help" || args[1] == "help" {
		if len(cmds) == 1 && cmds[0].verb == "" {
			return runCommand(cmds[0], args[1:], env)
		}
		groupUsage(env.stdout)
		return 0
	}
	for _, c := range cmds {
		if c.verb == args[1] {
			return runCommand(c, args[2:], env)
		}
	}
	if len(cmds) == 1 && cmds[0].verb == "" {
		return runCommand(cmds[0], args[1:], env)
	}
	fmt.Fprintf(env.stderr, "relaycast %s: unknown command %q\n", group, args[1])
	groupUsage(env.stderr)
	return 2
}

func runCommand(cmd *cliCommand, args []string, env cliEnv) int {
	fs := flag.NewFlagSet("relaycast "+cmd.name(), flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	server := fs.String("server", "", "server URL, e.g. https://live.example.com (env RELAYCAST_SERVER)")
	token := fs.String("token", "", "API token or key (env RELAYCAST_TOKEN)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	for _, f := range append(append([]cliFlag(nil), cmd.flags...), cmd.query...) {
		switch f.kind {
		case "bool":
			fs.Bool(f.name, false, f.help)
		case "int":
			fs.Int(f.name, 0, f.help)
		default:
			fs.String(f.name, "", f.help)
		}
	}
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: %s\n%s\n\nflags:\n", cmd.usageLine(), cmd.help)
		fs.PrintDefaults()
	}
	// Flags may come before or after the positional arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) != len(cmd.args) {
		fmt.Fprintf(env.stderr, "usage: %s\n", cmd.usageLine())
		return 2
	}
	conf := loadCLIConfig(env)
	c := &apiClient{server: conf.Server, token: conf.Token, http: &http.Client{Timeout: 5 * time.Minute}}
	if v := env.getenv("RELAYCAST_SERVER"); v != "" {
		c.server = v
	}
	if v := env.getenv("RELAYCAST_TOKEN"); v != "" {
		c.token = v
	}
	if *server != "" {
		c.server = *server
	}
	if *token != "" {
		c.token = *token
	}

	var err error
	if cmd.run != nil {
		err = cmd.run(env, c, pos, fs)
	} else {
		err = runGeneric(env, c, cmd, pos, fs, *asJSON)
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "relaycast %s: %v\n", cmd.name(), err)
		return 1
	}
	return 0
}

// runGeneric sends the command's request and prints the answer.
func runGeneric(env cliEnv, c *apiClient, cmd *cliCommand, pos []string, fs *flag.FlagSet, asJSON bool) error {
	path := cmd.path
	for i, a := range pos {
		path = strings.ReplaceAll(path, "{"+strconv.Itoa(i)+"}", url.PathEscape(a))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var body map[string]any
	for _, f := range cmd.flags {
		if !given[f.name] {
			continue
		}
		if body == nil {
			body = map[string]any{}
		}
		body[f.field] = fs.Lookup(f.name).Value.(flag.Getter).Get()
	}
	q := url.Values{}
	for _, f := range cmd.query {
		if given[f.name] {
			q.Set(f.field, fs.Lookup(f.name).Value.String())
		}
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var reqBody any
	if body != nil {
		reqBody = body
	} else if cmd.method == http.MethodPost || cmd.method == http.MethodPut {
		reqBody = map[string]any{}
	}
	out, err := c.do(cmd.method, path, reqBody)
	if err != nil {
		return err
	}
	return printAnswer(env.stdout, out, cmd.list, cmd.columns, asJSON)
}

// printAnswer prints a JSON answer: indented with asJSON or without a table layout, else
// the list under key as a table of columns, else the object's fields one per line.
func printAnswer(w io.Writer, raw []byte, key string, columns []string, asJSON bool) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		_, err = w.Write(raw)
		return err
	}
	if asJSON {
		b, _ := json.MarshalIndent(v, "", "  ")
		_, err := fmt.Fprintf(w, "%s\n", b)
		return err
	}
	obj, _ := v.(map[string]any)
	if key != "" && obj != nil {
		rows, _ := obj[key].([]any)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.ToUpper(strings.Join(columns, "\t")))
		for _, r := range rows {
			m, _ := r.(map[string]any)
			cells := make([]string, len(columns))
			for i, c := range columns {
				cells[i] = cellText(m[c])
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		return tw.Flush()
	}
	if obj == nil {
		b, _ := json.MarshalIndent(v, "", "  ")
		_, err := fmt.Fprintf(w, "%s\n", b)
		return err
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s:\t%s\n", k, cellText(obj[k]))
	}
	return tw.Flush()
}

func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}
