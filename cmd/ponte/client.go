package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/syncproto"
)

const clientUsage = `usage: ponte client --replica dev.db [--server URL] [--token T] [--lang L] COMMAND
  put COLLECTION ID JSON   set the named fields of a record (a partial update)
  get COLLECTION ID        print the record's fields as one JSON object
  list COLLECTION          print one JSON object per line, each with its "id"
  delete COLLECTION ID     delete a record
  sync                     push queued writes and pull until caught up
  status                   print the sync status as JSON
  conflicts                print conflicts reported for this device (JSON lines)
  rejected                 print writes the server refused (JSON lines)
Every command but sync works without a server.
`

func runClient(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, clientUsage) }
	replica := fs.String("replica", "", "local replica file (created if missing)")
	srv := fs.String("server", os.Getenv("PONTE_SERVER"), "server sync URL, e.g. ws://127.0.0.1:8080/sync ($PONTE_SERVER)")
	token := fs.String("token", os.Getenv("PONTE_TOKEN"), "device token ($PONTE_TOKEN)")
	lang := fs.String("lang", langFromEnv(), "language for messages (default from $LANG)")
	verbose := fs.Bool("v", false, "log sync details to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if *replica == "" || fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	c, err := client.Open(ctx, *replica, client.Options{Server: *srv, Token: *token, Lang: *lang,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		return err
	}
	defer c.Close()
	err = clientCommand(ctx, c, fs.Args(), stdout)
	if errors.Is(err, errUsage) {
		fs.Usage()
		return err
	}
	if err != nil {
		return localised(c, err)
	}
	return nil
}

func langFromEnv() string {
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		v, _, _ := strings.Cut(os.Getenv(k), ".")
		if v != "" && v != "C" && v != "POSIX" {
			return strings.ReplaceAll(v, "_", "-")
		}
	}
	return ""
}

// localised turns an error into what a person reads: the localised text for
// its code, with the technical detail after it.
func localised(c *client.Client, err error) error {
	if errors.Is(err, client.ErrNotFound) {
		return errors.New(locales.Text(c.Localizer(), "client.not_found", nil))
	}
	if errors.Is(err, client.ErrInvalidWrite) {
		return fmt.Errorf("%s\n  (%w)", locales.Text(c.Localizer(), "client.invalid_write", nil), err)
	}
	var e *syncproto.Error
	if !errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("%s\n  (%w)", locales.Text(c.Localizer(), e.Code.MessageID(), nil), err)
}

func clientCommand(ctx context.Context, c *client.Client, args []string, stdout io.Writer) error {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	want := func(n int) error {
		if len(args) != n {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "put":
		if err := want(4); err != nil {
			return err
		}
		var fields map[string]any
		dec := json.NewDecoder(strings.NewReader(args[3]))
		dec.UseNumber()
		if err := dec.Decode(&fields); err != nil || fields == nil {
			return fmt.Errorf("put: JSON must be an object of fields: %w: %w", client.ErrInvalidWrite,
				&syncproto.Error{Code: syncproto.CodeBadMessage, Err: err})
		}
		return c.Put(ctx, args[1], args[2], fields)
	case "get":
		if err := want(3); err != nil {
			return err
		}
		fields, err := c.Get(ctx, args[1], args[2])
		if err != nil {
			return err
		}
		return enc.Encode(fields)
	case "list":
		if err := want(2); err != nil {
			return err
		}
		return c.List(ctx, args[1], func(id string, data json.RawMessage) error {
			fields, err := syncproto.DecodeData(data)
			if err != nil {
				return err
			}
			idJSON, _ := json.Marshal(id)
			fields["id"] = idJSON
			return enc.Encode(fields)
		})
	case "delete":
		if err := want(3); err != nil {
			return err
		}
		return c.Delete(ctx, args[1], args[2])
	case "sync":
		if err := want(1); err != nil {
			return err
		}
		return c.Sync(ctx)
	case "status":
		if err := want(1); err != nil {
			return err
		}
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		return enc.Encode(st)
	case "conflicts":
		if err := want(1); err != nil {
			return err
		}
		cs, err := c.Conflicts(ctx)
		for _, cf := range cs {
			if err := enc.Encode(cf); err != nil {
				return err
			}
		}
		return err
	case "rejected":
		if err := want(1); err != nil {
			return err
		}
		rs, err := c.Rejected(ctx)
		for _, r := range rs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return err
	}
	return errUsage
}
