package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ponte-project/ponte/internal/bench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	records := fs.Int("records", 100000, "records pushed and then pulled by a fresh replica")
	clients := fs.Int("clients", 100, "live replicas receiving each fan-out write")
	writes := fs.Int("writes", 200, "writes whose fan-out latency is measured")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "seed for the generated records")
	cpuProfile := fs.String("cpuprofile", "", "write the clients' CPU profile to FILE and the server's to FILE.server")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	serverCmd := []string{"", "serve"}
	if *cpuProfile != "" {
		serverCmd = append(serverCmd, "--cpuprofile", *cpuProfile+".server")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	res, err := bench.Run(ctx, bench.Config{Records: *records, Clients: *clients, FanoutWrites: *writes,
		ServerCmd: append([]string{exe}, serverCmd[1:]...), Progress: stderr, Seed: *seed})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(res)
	}
	fmt.Fprintf(stdout, `records                     %d (%.0f bytes of JSON each)
initial sync                %.0f records/s (%.2f s)
push                        %.0f mutations/s
wire bytes per record       %.1f (%.2f of its JSON size)
fan-out to %d live replicas  p50 %.1f ms, p99 %.1f ms, max %.1f ms
server peak RSS             %.1f MB
`, res.Records, res.RecordJSONBytes, res.InitialSyncRecordsPerS, res.InitialSyncSeconds, res.PushMutationsPerS,
		res.WireBytesPerRecord, res.WireBytesPerJSONByte, res.FanoutClients, res.FanoutP50Ms, res.FanoutP99Ms,
		res.FanoutMaxMs, res.ServerPeakRSSMB)
	return nil
}
