// Command relaycast is the relaycast live-streaming engine: `relaycast serve` (the default)
// runs the server; other subcommands are small clients of its HTTP API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		o, err := parseOptions(args, os.LookupEnv)
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			fmt.Fprintln(stderr, "relaycast:", err)
			return 2
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := serve(ctx, o, stderr); err != nil {
			fmt.Fprintln(stderr, "relaycast:", err)
			return 1
		}
		return 0
	case "version":
		fmt.Fprintln(stdout, "relaycast", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		for _, g := range cliGroups() {
			if g == cmd {
				return runCLI(append([]string{cmd}, args...), cliEnv{getenv: os.Getenv, stdout: stdout, stderr: stderr, stdin: os.Stdin})
			}
		}
		fmt.Fprintf(stderr, "relaycast: unknown command %q\n%s\n", cmd, usage)
		return 2
	}
}

const usage = `usage: relaycast [serve] [flags]   run the server (relaycast serve -h lists the flags)
       relaycast version          print the version

API client commands (each has --help; --server/--token or RELAYCAST_SERVER/RELAYCAST_TOKEN,
else what "relaycast login" saved; --json prints the API's answer):
       relaycast login --server URL --username NAME [--password P | --api-key KEY]
       relaycast logout
       relaycast streams list|get|create|update|delete|regenerate-key|rtmp-token
       relaycast relays platforms|list|add|update|delete
       relaycast vods list|uploads|download|delete|storage|storage-set|storage-test|storage-delete
       relaycast keys list|create|revoke|delete`
