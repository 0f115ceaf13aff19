package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/server/store"
)

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	loc := locales.Localizer(langFromEnv())
	if len(args) == 0 || args[0] != "token" {
		fmt.Fprint(stderr, locales.Text(loc, "cli.admin.usage", nil))
		return errUsage
	}
	fs := flag.NewFlagSet("admin token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "ponte.db", "SQLite database file")
	user := fs.String("user", "", "user the device belongs to")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	if *user == "" || fs.NArg() != 0 {
		fmt.Fprint(stderr, locales.Text(loc, "cli.admin.usage", nil))
		return errUsage
	}
	st, err := store.Open(ctx, *db, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	device, token, err := st.IssueToken(ctx, *user)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, locales.Text(loc, "cli.admin.token_issued", map[string]any{"Device": device, "User": *user}))
	fmt.Fprintln(stdout, token)
	return nil
}
