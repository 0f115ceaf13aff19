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
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/syncproto"
)

func runClient(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lang := fs.String("lang", langFromEnv(), "language for messages (default from $LANG)")
	fs.Usage = func() { fmt.Fprint(stderr, locales.Text(locales.Localizer(*lang), "cli.client.usage", nil)) }
	replica := fs.String("replica", "", "local replica file (created if missing)")
	srv := fs.String("server", os.Getenv("PONTE_SERVER"), "server sync URL, e.g. ws://127.0.0.1:8080/sync ($PONTE_SERVER)")
	token := fs.String("token", os.Getenv("PONTE_TOKEN"), "device token ($PONTE_TOKEN)")
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
	c, err := client.Open(ctx, *replica, client.Options{Server: *srv, Token: *token, Lang: *lang, Schema: records.Schema,
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

// personError is an error as a person reads it, in their language, with
// the error it explains still in its chain.
type personError struct {
	text string
	err  error
}

func (e *personError) Error() string { return e.text }
func (e *personError) Unwrap() error { return e.err }

// localised turns an error into what a person reads: the localised text for
// its code, with the technical detail after it, or for a write that broke
// the records' rules, each field at fault and why.
func localised(c *client.Client, err error) error {
	l := c.Localizer()
	switch {
	case errors.Is(err, client.ErrNotFound):
		return &personError{locales.Text(l, "client.not_found", nil), err}
	case errors.Is(err, client.ErrUnknownUser):
		return &personError{locales.Text(l, "client.unknown_user", nil), err}
	}
	var e *syncproto.Error
	found := errors.As(err, &e)
	switch {
	case errors.Is(err, client.ErrInvalidWrite) && found && len(e.Fields) > 0:
		return &personError{locales.Text(l, "client.invalid_fields", nil) + "\n" + locales.Explain(l, e.Code, e.Fields), err}
	case errors.Is(err, client.ErrInvalidWrite):
		return &personError{fmt.Sprintf("%s\n  (%v)", locales.Text(l, "client.invalid_write", nil), err), err}
	case found:
		return &personError{fmt.Sprintf("%s\n  (%v)", locales.Text(l, e.Code.MessageID(), nil), err), err}
	}
	return err
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
	case "register":
		if err := want(2); err != nil {
			return err
		}
		reg, err := c.Register(ctx, args[1])
		for _, e := range reg {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return err
	case "mark":
		if err := want(4); err != nil {
			return err
		}
		return c.MarkAttendance(ctx, args[1], args[2], args[3])
	case "enrol":
		if err := want(2); err != nil {
			return err
		}
		if err := c.Enrol(ctx, args[1]); err != nil {
			return err
		}
		user, err := c.User(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, locales.Text(c.Localizer(), "cli.client.enrolled", map[string]any{"User": user}))
		return nil
	}
	return errUsage
}
