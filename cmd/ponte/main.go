// Command ponte runs Ponte's server, administers it, and offers a client for
// people, scripts and tests. Run "ponte help" for the commands.
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

// errUsage marks a command line that could not be understood.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "ponte:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "admin":
		return runAdmin(ctx, args[1:], stdout, stderr)
	case "client":
		return runClient(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "ponte: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

const usage = `Ponte: offline-first sync for field programmes.

Usage:
  ponte serve  --addr 127.0.0.1:8080 --db ponte.db
  ponte admin token --db ponte.db --user NAME
  ponte client --replica dev.db --server ws://127.0.0.1:8080/sync --token T [--lang it] COMMAND
      put COLLECTION ID JSON | get COLLECTION ID | list COLLECTION | delete COLLECTION ID
      sync | status | conflicts | rejected
  ponte bench [--json] [--records N] [--clients C]

Run "ponte COMMAND -h" for the flags of a command.
`
