package bench

import (
	"os"
	"testing"
	"time"
)

// TestCPUSeconds checks that the CPU time read from /proc grows by about the
// time this process spends computing.
func TestCPUSeconds(t *testing.T) {
	before, err := cpuSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		x++
	}
	after, err := cpuSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Bounded loosely: on a busy machine the loop may get less than all of a core.
	if used := after - before; used < 0.05 || used > 5 {
		t.Errorf("a 300 ms busy loop used %.2f s of CPU by /proc (%d iterations)", used, x)
	}
	if _, err := cpuSeconds(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}
