package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/nicksnyder/go-i18n/v2/i18n"

	"github.com/ponte-project/ponte/internal/demo"

	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server"
)

// serverGCPercent is the server's GOGC unless the environment sets one.
// Applying writes and serving pages allocate for every record; collecting
// at 200% heap growth instead of Go's 100% takes ~6% off the server's CPU
// per pushed write for ~60 MB more peak memory (README, Benchmark).
const serverGCPercent = 200

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	db := fs.String("db", "ponte.db", "SQLite database file")
	tlsCert := fs.String("tls-cert", "", "PEM certificate: serve HTTPS, devices sync over wss://")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
	withDemo := fs.Bool("demo", false, "on an empty database, create a demo programme to look at")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until the server stops")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	svc, err := server.Start(ctx, server.Config{Addr: *addr, DBPath: *db, Logger: log, Schema: records.Schema,
		TLSCert: *tlsCert, TLSKey: *tlsKey})
	if err != nil {
		return err
	}
	loc := locales.Localizer(langFromEnv())
	fmt.Fprintln(stdout, locales.Text(loc, "cli.serve.listening",
		map[string]any{"URL": svc.URL(), "SyncURL": svc.SyncURL(), "DB": *db}))
	if *withDemo {
		if err := startDemo(ctx, svc, loc, stdout); err != nil {
			svc.Close()
			return err
		}
	}
	select {
	case <-ctx.Done():
	case <-svc.Done():
		log.Error("server stopped", "err", svc.Err())
	}
	log.Info("shutting down")
	return svc.Close()
}

// startDemo fills an empty database with the demo programme and says how
// to sign in; a database that already holds the demo is left as it is.
func startDemo(ctx context.Context, svc *server.Service, loc *i18n.Localizer, stdout io.Writer) error {
	logins, err := demo.Populate(ctx, svc.Store, uint64(time.Now().UnixNano()), time.Now())
	switch {
	case errors.Is(err, demo.ErrNotEmpty):
		if _, uerr := svc.Store.GetUser(ctx, "coordinatrice"); uerr != nil {
			fmt.Fprintln(stdout, locales.Text(loc, "cli.serve.demo_not_empty", nil))
			return nil
		}
		logins = demo.Logins{Coordinator: "coordinatrice", Admin: "admin", Password: demo.Password}
	case err != nil:
		return err
	}
	fmt.Fprintln(stdout, locales.Text(loc, "cli.serve.demo", map[string]any{"URL": svc.URL(),
		"User": logins.Coordinator, "Password": logins.Password}))
	return nil
}
