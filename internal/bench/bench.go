// Package bench measures Ponte end to end on loopback: a real server process
// and real client replicas. It backs `ponte bench`.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/internal/sampledata"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
)

// Config sets the size of a run.
type Config struct {
	Records      int      // records pushed, then pulled by a fresh replica
	Clients      int      // live replicas receiving each fan-out write
	FanoutWrites int      // writes whose fan-out latency is measured
	ServerCmd    []string // argv that runs `ponte serve`; --addr and --db are appended
	Progress     io.Writer
	Seed         uint64
}

// Result is what a run measured. Rates are per second of wall time on this
// machine, with server and clients sharing its cores.
type Result struct {
	Records                int     `json:"records"`
	RecordJSONBytes        float64 `json:"record_json_bytes"`
	PushMutationsPerS      float64 `json:"push_mutations_per_s"`
	InitialSyncRecordsPerS float64 `json:"initial_sync_records_per_s"`
	InitialSyncSeconds     float64 `json:"initial_sync_seconds"`
	WireBytesPerRecord     float64 `json:"wire_bytes_per_record"`
	WireBytesPerJSONByte   float64 `json:"wire_bytes_per_json_byte"`
	FanoutClients          int     `json:"fanout_clients"`
	FanoutWrites           int     `json:"fanout_writes"`
	FanoutP50Ms            float64 `json:"fanout_p50_ms"`
	FanoutP99Ms            float64 `json:"fanout_p99_ms"`
	FanoutMaxMs            float64 `json:"fanout_max_ms"`
	ServerPeakRSSMB        float64 `json:"server_peak_rss_mb"`
	// CPU time per record, from /proc: steadier than the rates on a
	// machine whose speed drifts, and it says which side to work on.
	PushServerCPUUs        float64 `json:"push_server_cpu_us_per_mutation"`
	PushClientCPUUs        float64 `json:"push_client_cpu_us_per_mutation"`
	InitialSyncServerCPUUs float64 `json:"initial_sync_server_cpu_us_per_record"`
	InitialSyncClientCPUUs float64 `json:"initial_sync_client_cpu_us_per_record"`
	CPUs                   int     `json:"cpus"`
	GoVersion              string  `json:"go_version"`
}

func (c *Config) progress(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "bench: "+format+"\n", args...)
	}
}

// Run performs a benchmark in a temporary directory it removes afterwards.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	dir, err := os.MkdirTemp("", "ponte-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	res := &Result{Records: cfg.Records, FanoutClients: cfg.Clients, FanoutWrites: cfg.FanoutWrites,
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	dbPath := filepath.Join(dir, "server.db")
	tokens, err := issueTokens(ctx, dbPath, cfg.Clients+3)
	if err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, cfg.ServerCmd, dbPath, dir)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	cfg.progress("server pid %d at %s", srv.cmd.Process.Pid, srv.url)

	if err := fanout(ctx, &cfg, res, srv.url, dir, tokens[2:]); err != nil {
		return nil, fmt.Errorf("bench fan-out: %w", err)
	}
	cpu := cpuMeter{server: srv.cmd.Process.Pid}
	if err := push(ctx, &cfg, res, srv.url, dir, tokens[0], &cpu); err != nil {
		return nil, fmt.Errorf("bench push: %w", err)
	}
	if err := initialSync(ctx, &cfg, res, srv.url, dir, tokens[1], &cpu); err != nil {
		return nil, fmt.Errorf("bench initial sync: %w", err)
	}
	if res.ServerPeakRSSMB, err = peakRSS(srv.cmd.Process.Pid); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := srv.stop(); err != nil {
		return nil, fmt.Errorf("bench: server: %w", err)
	}
	return res, nil
}

func issueTokens(ctx context.Context, dbPath string, n int) ([]string, error) {
	st, err := store.Open(ctx, dbPath, store.Options{})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer st.Close()
	tokens := make([]string, n)
	for i := range tokens {
		user := fmt.Sprintf("bench-%d", i)
		if err := st.AddUser(ctx, store.User{Name: user, Role: scope.Coordinator}); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if _, tokens[i], err = st.IssueToken(ctx, user); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	return tokens, nil
}

type serverProc struct {
	cmd  *exec.Cmd
	url  string
	once sync.Once
	err  error
}

var syncURL = regexp.MustCompile(`ws://\S+/sync`)

func startServer(ctx context.Context, argv []string, dbPath, dir string) (*serverProc, error) {
	if len(argv) == 0 {
		return nil, errors.New("bench: no server command")
	}
	args := append(slices.Clone(argv[1:]), "--addr", "127.0.0.1:0", "--db", dbPath)
	cmd := exec.Command(argv[0], args...)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start server: %w", err)
	}
	p := &serverProc{cmd: cmd}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u := syncURL.FindString(sc.Text()); u != "" {
				found <- u
			}
		}
		close(found)
	}()
	select {
	case u, ok := <-found:
		if !ok {
			p.stop()
			return nil, errors.New("bench: the server exited before listening (see its log)")
		}
		p.url = u
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, errors.New("bench: the server did not start within 30s")
	case <-ctx.Done():
		p.stop()
		return nil, context.Cause(ctx)
	}
	return p, nil
}

func (p *serverProc) stop() error {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case p.err = <-done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			p.err = errors.New("server did not stop within 20s of SIGTERM")
		}
	})
	return p.err
}

// cpuMeter reads the CPU time the server process and this one (the
// clients) have used, from /proc/PID/stat.
type cpuMeter struct {
	server                 int
	server0, client0       float64
	serverUsed, clientUsed float64 // seconds, between start and stop
}

func (m *cpuMeter) start() error {
	var err error
	if m.server0, err = cpuSeconds(m.server); err == nil {
		m.client0, err = cpuSeconds(os.Getpid())
	}
	return err
}

func (m *cpuMeter) stop() error {
	s, err := cpuSeconds(m.server)
	if err != nil {
		return err
	}
	c, err := cpuSeconds(os.Getpid())
	m.serverUsed, m.clientUsed = s-m.server0, c-m.client0
	return err
}

// perRecord returns the server's and the clients' CPU microseconds per
// record over the last start and stop.
func (m *cpuMeter) perRecord(n int) (server, client float64) {
	return round2(m.serverUsed * 1e6 / float64(n)), round2(m.clientUsed * 1e6 / float64(n))
}

// cpuSeconds returns the user and system CPU time of a process, from the
// 14th and 15th fields of /proc/PID/stat, in clock ticks of 1/100 s (the
// USER_HZ of Linux on every architecture Go supports).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time: %w", err)
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis (the third field, state, is first).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("read CPU time: unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("read CPU time: unexpected /proc/%d/stat", pid)
	}
	var ticks float64
	for _, v := range f[11:13] {
		t, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("read CPU time: %w", err)
		}
		ticks += t
	}
	return ticks / 100, nil
}

// peakRSS reads the peak resident set size of a process from /proc.
func peakRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read peak RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("read peak RSS: %q: %w", line, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("read peak RSS: no VmHWM")
}

func openReplica(ctx context.Context, dir, name, url, token string, opts client.Options) (*client.Client, error) {
	opts.Server, opts.Token, opts.Schema = url, token, records.Schema // as an app opens it
	return client.Open(ctx, filepath.Join(dir, name+".db"), opts)
}

// fanout connects live replicas and measures, for each write of one
// replica, how long until each of the others has applied it.
func fanout(ctx context.Context, cfg *Config, res *Result, url, dir string, tokens []string) error {
	type arrival struct {
		id string
		at time.Time
	}
	arrivals := make(chan arrival, cfg.Clients*4)
	live := make(chan struct{}, cfg.Clients+1)
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	var wg sync.WaitGroup
	var clients []*client.Client
	defer func() {
		stopAll()
		wg.Wait()
		for _, c := range clients {
			c.Close()
		}
	}()
	start := func(name, token string, onChange func(client.Event)) (*client.Client, error) {
		c, err := openReplica(ctx, dir, name, url, token, client.Options{OnEvent: func(e client.Event) {
			if e.Kind == client.EventState && e.State == client.StateLive {
				live <- struct{}{}
			}
			if onChange != nil && e.Kind == client.EventChanged && !e.Local {
				onChange(e)
			}
		}})
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(runCtx); err != nil {
				cfg.progress("fan-out replica %s: %v", name, err)
			}
		}()
		return c, nil
	}
	for i := range cfg.Clients {
		if _, err := start(fmt.Sprintf("live-%d", i), tokens[i+1], func(e client.Event) {
			for _, k := range e.Records {
				arrivals <- arrival{id: k.ID, at: e.At}
			}
		}); err != nil {
			return err
		}
	}
	writer, err := start("fan-writer", tokens[0], nil)
	if err != nil {
		return err
	}
	for i := range cfg.Clients + 1 {
		select {
		case <-live:
		case <-time.After(60 * time.Second):
			return fmt.Errorf("only %d of %d replicas went live", i, cfg.Clients+1)
		}
	}
	cfg.progress("%d live replicas connected; measuring %d writes", cfg.Clients, cfg.FanoutWrites)
	r := rand.New(rand.NewPCG(cfg.Seed, 1))
	sites := []string{uuid.NewString()}
	var latencies []float64
	for w := range cfg.FanoutWrites {
		id := uuid.NewString()
		t0 := time.Now()
		if err := writer.Put(ctx, records.Appointments, id, sampledata.Appointment(r, sites, uuid.NewString(), time.Now())); err != nil {
			return err
		}
		for got := 0; got < cfg.Clients; {
			select {
			case a := <-arrivals:
				if a.id == id {
					latencies = append(latencies, float64(a.at.Sub(t0).Microseconds())/1000)
					got++
				}
			case <-time.After(30 * time.Second):
				return fmt.Errorf("write %d reached %d of %d replicas within 30s", w, got, cfg.Clients)
			}
		}
	}
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		res.FanoutP50Ms = round2(latencies[n/2])
		res.FanoutP99Ms = round2(latencies[min(n-1, n*99/100)])
		res.FanoutMaxMs = round2(latencies[n-1])
	}
	return nil
}

// push writes the records into one replica offline, then measures how fast
// the server accepts them.
func push(ctx context.Context, cfg *Config, res *Result, url, dir, token string, cpu *cpuMeter) error {
	var pushed atomic.Int64
	var lastPush atomic.Int64
	cpuErr := make(chan error, 1)
	w, err := openReplica(ctx, dir, "writer", url, token, client.Options{OnEvent: func(e client.Event) {
		if e.Kind == client.EventPushed {
			if pushed.Add(int64(len(e.Records))) == int64(cfg.Records) {
				cpuErr <- cpu.stop() // the last result: the pull of the echo is not counted
			}
			lastPush.Store(e.At.UnixNano())
		}
	}})
	if err != nil {
		return err
	}
	defer w.Close()
	r := rand.New(rand.NewPCG(cfg.Seed, 2))
	sites := make([]string, 8)
	for i := range sites {
		sites[i] = uuid.NewString()
	}
	var jsonBytes int
	const batch = 2000
	for done := 0; done < cfg.Records; done += batch {
		ops := make([]client.Op, 0, batch)
		for range min(batch, cfg.Records-done) {
			p := sampledata.Person(r, sites)
			b, _ := json.Marshal(p)
			jsonBytes += len(b)
			ops = append(ops, client.Op{Collection: records.Persons, ID: uuid.NewString(), Fields: p})
		}
		if err := w.Write(ctx, ops...); err != nil {
			return err
		}
		if (done/batch)%10 == 9 || done+len(ops) == cfg.Records {
			cfg.progress("queued %d/%d records offline", done+len(ops), cfg.Records)
		}
	}
	res.RecordJSONBytes = round2(float64(jsonBytes) / float64(cfg.Records))
	cfg.progress("pushing %d records", cfg.Records)
	start := time.Now()
	if err := cpu.start(); err != nil {
		return err
	}
	if err := w.Sync(ctx); err != nil {
		return err
	}
	if n := pushed.Load(); n != int64(cfg.Records) {
		return fmt.Errorf("server answered %d of %d writes", n, cfg.Records)
	}
	if err := <-cpuErr; err != nil {
		return err
	}
	res.PushServerCPUUs, res.PushClientCPUUs = cpu.perRecord(cfg.Records)
	if rej, err := w.Rejected(ctx); err != nil || len(rej) > 0 {
		if err == nil {
			err = fmt.Errorf("server refused %d of %d writes, the first: %s", len(rej), cfg.Records, rej[0].Message)
		}
		return err
	}
	elapsed := time.Unix(0, lastPush.Load()).Sub(start).Seconds()
	res.PushMutationsPerS = round2(float64(cfg.Records) / elapsed)
	return nil
}

// countingConn counts the bytes that cross a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// initialSync measures a fresh replica pulling everything.
func initialSync(ctx context.Context, cfg *Config, res *Result, url, dir, token string, cpu *cpuMeter) error {
	var wire atomic.Int64
	dialer := &websocket.Dialer{EnableCompression: true, HandshakeTimeout: 15 * time.Second,
		ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{Conn: conn, n: &wire}, nil
		}}
	c, err := openReplica(ctx, dir, "fresh", url, token, client.Options{Dialer: dialer})
	if err != nil {
		return err
	}
	defer c.Close()
	cfg.progress("fresh replica pulling everything")
	start := time.Now()
	if err := cpu.start(); err != nil {
		return err
	}
	if err := c.Sync(ctx); err != nil {
		return err
	}
	elapsed := time.Since(start).Seconds()
	if err := cpu.stop(); err != nil {
		return err
	}
	res.InitialSyncServerCPUUs, res.InitialSyncClientCPUUs = cpu.perRecord(cfg.Records)
	var held int
	rows, err := c.Query(ctx, `SELECT count(*) FROM records WHERE collection = 'persons'`)
	if err != nil {
		return err
	}
	for rows.Next() {
		err = rows.Scan(&held)
	}
	rows.Close()
	if err != nil || held != cfg.Records {
		return fmt.Errorf("fresh replica holds %d of %d records (%v)", held, cfg.Records, err)
	}
	res.InitialSyncSeconds = round2(elapsed)
	res.InitialSyncRecordsPerS = round2(float64(cfg.Records) / elapsed)
	res.WireBytesPerRecord = round2(float64(wire.Load()) / float64(cfg.Records))
	res.WireBytesPerJSONByte = round2(res.WireBytesPerRecord / res.RecordJSONBytes)
	return nil
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
