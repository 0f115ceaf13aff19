package demo_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ponte-project/ponte/internal/demo"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
)

func TestPopulate(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "demo.db"), store.Options{Schema: records.Schema})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	logins, err := demo.Populate(ctx, st, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	page, err := st.Pull(ctx, []string{scope.All}, nil, 5000)
	if err != nil || page.More {
		t.Fatalf("pull: %v (more %v)", err, page.More)
	}
	for _, ch := range page.Changes {
		counts[ch.Collection]++
	}
	want := map[string]int{records.Persons: 300, records.Appointments: 400, records.Courses: 3, records.Lessons: 90, records.Enrolments: 60}
	for coll, n := range want {
		if counts[coll] != n {
			t.Errorf("%d %s, want %d", counts[coll], coll, n)
		}
	}
	if counts[records.Attendance] < 1000 {
		t.Errorf("%d attendance marks, want the held lessons' marks", counts[records.Attendance])
	}
	stats, _ := st.Stats(ctx)
	if stats.Conflicts < 6 {
		t.Errorf("%d open conflicts, want a few to decide", stats.Conflicts)
	}
	if _, _, err := st.Login(ctx, logins.Coordinator, logins.Password); err != nil {
		t.Errorf("the demo coordinator cannot sign in: %v", err)
	}
	if _, err := demo.Populate(ctx, st, 1, now); !errors.Is(err, demo.ErrNotEmpty) {
		t.Errorf("a second Populate: %v, want ErrNotEmpty", err)
	}
}
