package bench_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ponte-project/ponte/internal/bench"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server"
)

// TestMain lets this test binary stand in for `ponte serve` when the
// benchmark starts it as its server process.
func TestMain(m *testing.M) {
	if os.Getenv("PONTE_BENCH_SERVE") == "1" {
		os.Exit(serve(os.Args[2:])) // os.Args[1] is "serve-for-bench"
	}
	os.Exit(m.Run())
}

func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "")
	db := fs.String("db", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	svc, err := server.Start(ctx, server.Config{Addr: *addr, DBPath: *db, Schema: records.Schema, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ponte: serving %s (devices sync at %s)\n", svc.URL(), svc.SyncURL())
	<-ctx.Done()
	if err := svc.Close(); err != nil {
		return 1
	}
	return 0
}

// TestRun_Small runs the whole benchmark at a small size: it must finish and
// report figures that make sense.
func TestRun_Small(t *testing.T) {
	t.Setenv("PONTE_BENCH_SERVE", "1")
	var progress strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := bench.Run(ctx, bench.Config{Records: 600, Clients: 3, FanoutWrites: 5,
		ServerCmd: []string{os.Args[0], "serve-for-bench"}, Progress: &progress, Seed: 1})
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, progress.String())
	}
	if res.Records != 600 || res.PushMutationsPerS <= 0 || res.InitialSyncRecordsPerS <= 0 ||
		res.FanoutP50Ms <= 0 || res.FanoutP99Ms < res.FanoutP50Ms || res.ServerPeakRSSMB <= 0 ||
		res.WireBytesPerRecord <= 0 || res.WireBytesPerJSONByte >= 1.5 || res.RecordJSONBytes < 150 {
		t.Fatalf("implausible result: %+v", res)
	}
}
