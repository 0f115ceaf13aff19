// Package browser drives a real headless Chromium for end-to-end tests of
// the web pages, over the Chrome DevTools Protocol on a loopback websocket
// (gorilla/websocket, already a dependency): no driver binary, no Node.
//
// Tests call Start, which fails the test when PONTE_BROWSER_TESTS=1 (CI
// installs Debian's chromium) and no browser is found, and skips it
// otherwise.
package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Browser is a headless Chromium with one page open.
type Browser struct {
	tb      testing.TB
	cmd     *exec.Cmd
	dir     string // the profile
	ws      *websocket.Conn
	session string

	mu      sync.Mutex
	next    int64
	waiting map[int64]chan reply
	wmu     sync.Mutex
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// binary finds Chromium: $PONTE_CHROMIUM, or Debian's.
func binary() string {
	for _, p := range []string{os.Getenv("PONTE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Start launches Chromium with a fresh profile and opens a blank page. The
// browser stops when the test ends.
func Start(tb testing.TB) *Browser {
	tb.Helper()
	bin := binary()
	if bin == "" {
		if os.Getenv("PONTE_BROWSER_TESTS") == "1" {
			tb.Fatal("PONTE_BROWSER_TESTS=1 but no Chromium: install Debian's chromium or set PONTE_CHROMIUM")
		}
		tb.Skip("no Chromium here (set PONTE_BROWSER_TESTS=1 to require it; .ci/run installs it)")
	}
	// Not tb.TempDir: Chromium's helper processes may still be writing to
	// the profile for a moment after it is stopped.
	dir, err := os.MkdirTemp("", "ponte-chromium-")
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--remote-debugging-address=127.0.0.1",
		"--remote-debugging-port=0", "--user-data-dir="+dir, "about:blank")
	cmd.Stdout, cmd.Stderr = nil, nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers stop with it
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	b := &Browser{tb: tb, cmd: cmd, dir: dir, waiting: map[int64]chan reply{}}
	tb.Cleanup(b.stop)
	var endpoint string
	for deadline := time.Now().Add(30 * time.Second); ; {
		if f, err := os.Open(filepath.Join(dir, "DevToolsActivePort")); err == nil {
			sc := bufio.NewScanner(f)
			var lines []string
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			f.Close()
			if len(lines) >= 2 {
				endpoint = "ws://127.0.0.1:" + lines[0] + lines[1]
				break
			}
		}
		if time.Now().After(deadline) {
			tb.Fatal("chromium did not open its debugging port within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ws, _, err := websocket.DefaultDialer.Dial(endpoint, nil)
	if err != nil {
		tb.Fatalf("connect to chromium: %v", err)
	}
	ws.SetReadLimit(64 << 20)
	b.ws = ws
	go b.read()
	var target struct{ TargetID string }
	b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	b.call(b.session, "Page.enable", nil, nil)
	b.call(b.session, "Runtime.enable", nil, nil)
	return b
}

func (b *Browser) stop() {
	if b.ws != nil {
		b.ws.Close()
	}
	if b.cmd.Process != nil {
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		b.cmd.Wait()
	}
	for range 50 {
		if os.RemoveAll(b.dir) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// read dispatches replies to their callers; events are not needed.
func (b *Browser) read() {
	for {
		_, data, err := b.ws.ReadMessage()
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.waiting {
				ch <- reply{Error: &struct {
					Message string `json:"message"`
				}{Message: "connection closed: " + err.Error()}}
				delete(b.waiting, id)
			}
			b.mu.Unlock()
			return
		}
		var msg struct {
			ID int64 `json:"id"`
			reply
		}
		if json.Unmarshal(data, &msg) != nil || msg.ID == 0 {
			continue
		}
		b.mu.Lock()
		ch := b.waiting[msg.ID]
		delete(b.waiting, msg.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- msg.reply
		}
	}
}

// call sends a DevTools command and decodes its result into out.
func (b *Browser) call(session, method string, params any, out any) {
	b.tb.Helper()
	if err := b.try(session, method, params, out); err != nil {
		b.tb.Fatalf("%s: %v", method, err)
	}
}

func (b *Browser) try(session, method string, params any, out any) error {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan reply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	b.wmu.Lock()
	err := b.ws.WriteJSON(msg)
	b.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return errors.New(r.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("no answer within 30s")
	}
}

// Navigate opens url and waits until the page has loaded.
func (b *Browser) Navigate(url string) {
	b.tb.Helper()
	b.call(b.session, "Page.navigate", map[string]any{"url": url}, nil)
	b.WaitFor(`document.readyState === "complete" && location.href !== "about:blank"`)
}

// Eval runs JavaScript in the page (awaiting a promise) and returns its
// value as JSON.
func (b *Browser) Eval(expr string) json.RawMessage {
	b.tb.Helper()
	v, err := b.eval(expr)
	if err != nil {
		b.tb.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

func (b *Browser) eval(expr string) (json.RawMessage, error) {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.try(b.session, "Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true,
		"returnByValue": true}, &res); err != nil {
		return nil, err
	}
	if e := res.ExceptionDetails; e != nil {
		return nil, fmt.Errorf("%s %s", e.Text, e.Exception.Description)
	}
	return res.Result.Value, nil
}

// String evaluates expr to a string.
func (b *Browser) String(expr string) string {
	b.tb.Helper()
	var s string
	if err := json.Unmarshal(b.Eval(expr), &s); err != nil {
		b.tb.Fatalf("eval %s: not a string", expr)
	}
	return s
}

// WaitFor waits up to 20s until expr is true in the page; navigations in
// between are fine.
func (b *Browser) WaitFor(expr string) {
	b.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		v, err := b.eval(expr)
		if err == nil && strings.TrimSpace(string(v)) == "true" {
			return
		}
		if err != nil {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.tb.Fatalf("waited 20s for %s (%s); page at %s", expr, last, b.href())
}

func (b *Browser) href() string {
	v, _ := b.eval("location.href")
	return string(v)
}
