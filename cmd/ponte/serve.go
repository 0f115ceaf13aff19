package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/ponte-project/ponte/locales"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	db := fs.String("db", "ponte.db", "SQLite database file")
	tlsCert := fs.String("tls-cert", "", "PEM certificate: serve HTTPS, devices sync over wss://")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until the server stops")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	svc, err := server.Start(ctx, server.Config{Addr: *addr, DBPath: *db, Logger: log, Schema: records.Schema,
		TLSCert: *tlsCert, TLSKey: *tlsKey})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, locales.Text(locales.Localizer(langFromEnv()), "cli.serve.listening",
		map[string]any{"URL": svc.URL(), "SyncURL": svc.SyncURL(), "DB": *db}))
	select {
	case <-ctx.Done():
	case <-svc.Done():
		log.Error("server stopped", "err", svc.Err())
	}
	log.Info("shutting down")
	return svc.Close()
}
