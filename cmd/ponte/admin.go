package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nicksnyder/go-i18n/v2/i18n"

	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
)

// multiFlag collects a flag given several times (--site A --site B).
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// runAdmin runs `ponte admin`: sites, users, tokens, enrolment codes and
// devices, on the server's database (flags first, names last).
func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	loc := locales.Localizer(langFromEnv())
	usage := func() error {
		fmt.Fprint(stderr, locales.Text(loc, "cli.admin.usage", nil))
		return errUsage
	}
	if len(args) == 0 {
		return usage()
	}
	cmd, rest := args[0], args[1:]
	if cmd == "site" || cmd == "user" || cmd == "device" {
		if len(rest) == 0 {
			return usage()
		}
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	fs := flag.NewFlagSet("admin "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage() }
	db := fs.String("db", "ponte.db", "SQLite database file")
	var role, user string
	var sites, courses multiFlag
	switch cmd {
	case "user add", "user set":
		if cmd == "user add" {
			fs.StringVar(&role, "role", "", "mediator, teacher, coordinator or admin")
		}
		fs.Var(&sites, "site", "a site the user works at (repeat for several)")
		fs.Var(&courses, "course", "a course the user teaches (repeat for several)")
	case "token", "enrol":
		fs.StringVar(&user, "user", "", "the user the device belongs to")
	case "site add", "device list", "device revoke", "history", "user password":
	default:
		return usage()
	}
	if err := fs.Parse(rest); err != nil {
		return errUsage
	}
	names := fs.Args()
	wantNames := map[string]int{"site add": 1, "user add": 1, "user set": 1, "user password": 1, "device revoke": 1, "history": 2}[cmd]
	if len(names) != wantNames || ((cmd == "token" || cmd == "enrol") && user == "") {
		return usage()
	}
	st, err := store.Open(ctx, *db, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	err = adminCommand(ctx, st, loc, cmd, names, role, user, sites, courses, os.Stdin, stdout, stderr)
	switch {
	case errors.Is(err, store.ErrExists):
		return &personError{locales.Text(loc, "cli.admin.exists", map[string]any{"Name": strings.Join(names, " ")}), err}
	case errors.Is(err, store.ErrNotFound):
		return &personError{fmt.Sprintf("%s\n  (%v)", locales.Text(loc, "cli.admin.not_found", nil), err), err}
	case err != nil:
		if text := locales.ExplainError(loc, err); text != "" {
			return &personError{fmt.Sprintf("%s\n  (%v)", text, err), err}
		}
	}
	return err
}

func adminCommand(ctx context.Context, st *store.Store, loc *i18n.Localizer, cmd string, names []string,
	role, user string, sites, courses []string, stdin io.Reader, stdout, stderr io.Writer) error {
	switch cmd {
	case "site add":
		id, err := st.AddSite(ctx, names[0])
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, id)
	case "user add":
		return st.AddUser(ctx, store.User{Name: names[0], Role: scope.Role(role), Sites: sites, Courses: courses})
	case "user set":
		return st.SetAssignments(ctx, names[0], sites, courses)
	case "user password":
		// Read from standard input, so it stays out of the shell's history
		// and the process list.
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("user password: read standard input: %w", err)
		}
		return st.SetPassword(ctx, names[0], strings.TrimRight(line, "\r\n"))
	case "token":
		device, token, err := st.IssueToken(ctx, user)
		if err != nil {
			return err
		}
		fmt.Fprintln(stderr, locales.Text(loc, "cli.admin.token_issued", map[string]any{"Device": device, "User": user}))
		fmt.Fprintln(stdout, token)
	case "enrol":
		code, expires, err := st.IssueEnrolmentCode(ctx, user)
		if err != nil {
			return err
		}
		fmt.Fprintln(stderr, locales.Text(loc, "cli.admin.code_issued", map[string]any{"User": user,
			"Time": expires.Local().Format("2006-01-02 15:04")}))
		fmt.Fprintln(stdout, code)
	case "device list":
		ds, err := st.Devices(ctx)
		if err != nil {
			return err
		}
		for _, d := range ds {
			status, seen := "active", "-"
			if d.Revoked != nil {
				status = "revoked"
			}
			if d.LastSeen != nil {
				seen = d.LastSeen.Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", d.ID, d.User, status, seen)
		}
	case "device revoke":
		return st.RevokeDevice(ctx, names[0])
	case "history":
		ws, err := st.History(ctx, names[0], names[1])
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		for _, w := range ws {
			if err := enc.Encode(w); err != nil {
				return err
			}
		}
	}
	return nil
}
