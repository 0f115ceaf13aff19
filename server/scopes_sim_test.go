package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/client"
	"github.com/ponte-project/ponte/internal/testenv"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

var scopeSeed = flag.Uint64("scope-seed", 0, "seed of TestScopes_RandomizedSimulation (0: from the clock)")

// TestScopes_RandomizedSimulation moves persons between sites, enrols and
// withdraws them, deletes some, while mediators, a teacher and a
// coordinator write and sync at random. At the end every replica holds
// exactly what its user may see of the server's records, field for field
// (names only through a register), whatever happened in between.
func TestScopes_RandomizedSimulation(t *testing.T) {
	seed := *scopeSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -scope-seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	ctx := context.Background()
	srv := testenv.MustStartServerAt(t, filepath.Join(t.TempDir(), "s.db"), server.Config{Schema: records.Schema})
	sites := make([]string, 3)
	for i := range sites {
		var err error
		if sites[i], err = srv.Store.AddSite(ctx, fmt.Sprintf("site %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	newID := func() string {
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return uuid.Must(uuid.FromBytes(b[:])).String()
	}
	courses := []string{newID(), newID()}
	users := []store.User{
		{Name: "coord", Role: scope.Coordinator},
		{Name: "medA", Role: scope.Mediator, Sites: []string{sites[0]}},
		{Name: "medAB", Role: scope.Mediator, Sites: []string{sites[0], sites[1]}},
		{Name: "medC", Role: scope.Mediator, Sites: []string{sites[2]}},
		{Name: "teach", Role: scope.Teacher, Courses: []string{courses[0]}},
	}
	devices := make([]*client.Client, len(users))
	for i, u := range users {
		devices[i] = device(t, srv, u)
	}
	coord := devices[0]
	sync := func(c *client.Client) {
		t.Helper()
		if err := c.Sync(testenv.Context(t, 20*time.Second)); err != nil {
			t.Fatalf("seed %d: sync: %v", seed, err)
		}
	}
	var persons []string
	for _, crs := range courses {
		if err := coord.Put(ctx, records.Courses, crs, map[string]any{"title": map[string]string{"it": "Corso"}, "level": "A1",
			"site_id": sites[0], "teachers": []string{"teach"}, "planned_hours": 20}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 300 {
		switch op := rng.IntN(10); {
		case op < 3 || len(persons) == 0: // a new intake form
			id := newID()
			persons = append(persons, id)
			if err := coord.Put(ctx, records.Persons, id, map[string]any{"site_id": sites[rng.IntN(3)],
				"given_name": fmt.Sprintf("P%d", round), "consent_given": true, "consent_date": "2026-11-01",
				"consent_language": "it", "notes": "intake"}); err != nil {
				t.Fatal(err)
			}
		case op < 5: // a move
			if err := coord.Put(ctx, records.Persons, persons[rng.IntN(len(persons))],
				map[string]any{"site_id": sites[rng.IntN(3)]}); err != nil && !isGone(err) {
				t.Fatal(err)
			}
		case op < 7: // an enrolment, new or changed
			crs, p := courses[rng.IntN(2)], persons[rng.IntN(len(persons))]
			status := []string{"active", "active", "withdrawn"}[rng.IntN(3)]
			if err := coord.Put(ctx, records.Enrolments, records.EnrolmentID(crs, p),
				map[string]any{"course_id": crs, "person_id": p, "status": status}); err != nil {
				t.Fatal(err)
			}
		case op < 8: // a delete
			if err := coord.Delete(ctx, records.Persons, persons[rng.IntN(len(persons))]); err != nil {
				t.Fatal(err)
			}
		default: // a mediator notes something on a person they hold
			m := devices[1+rng.IntN(3)]
			held := keysOf(holds(t, m))
			if len(held) > 0 {
				k := held[rng.IntN(len(held))]
				coll, id, _ := cut(k)
				if coll == records.Persons {
					_ = m.Put(ctx, coll, id, map[string]any{"notes": fmt.Sprintf("round %d", round)})
				}
			}
		}
		sync(devices[rng.IntN(len(devices))])
	}
	for range 2 {
		for _, c := range devices {
			sync(c)
		}
	}

	// What the server holds, and so what each user should see.
	all := map[string]syncproto.Change{}
	cursors := map[string]int64{}
	for {
		page, err := srv.Store.Pull(ctx, []string{scope.All}, cursors, 5000)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range page.Changes {
			all[ch.Collection+"/"+ch.ID] = ch
		}
		cursors = page.Cursors
		if !page.More {
			break
		}
	}
	active := map[string]bool{} // course/person with an active enrolment
	for _, ch := range all {
		if ch.Collection != records.Enrolments || !hasData(ch) {
			continue
		}
		var e records.Enrolment
		json.Unmarshal(ch.Data, &e)
		if e.Status != "withdrawn" {
			active[e.CourseID+"/"+e.PersonID] = true
		}
	}
	for i, u := range users {
		want := map[string]map[string]json.RawMessage{}
		for k, ch := range all {
			if !hasData(ch) {
				continue // deleted: not visible anywhere
			}
			var data map[string]json.RawMessage
			json.Unmarshal(ch.Data, &data)
			var site, course string
			json.Unmarshal(data["site_id"], &site)
			json.Unmarshal(data["course_id"], &course)
			_, id, _ := cut(k)
			if site == "" && ch.Collection == records.Persons {
				// A delete raced with an edit and only the edit survived: the
				// record stays at the site it was last given.
				h, err := srv.Store.History(ctx, ch.Collection, id)
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range h {
					var f map[string]json.RawMessage
					if json.Unmarshal(w.Data, &f) == nil && f["site_id"] != nil {
						json.Unmarshal(f["site_id"], &site)
					}
				}
			}
			switch {
			case u.Role == scope.Coordinator:
				want[k] = data
			case u.Role == scope.Mediator && (ch.Collection == records.Persons || ch.Collection == records.Appointments) && slices.Contains(u.Sites, site):
				want[k] = data
			case u.Role == scope.Teacher && ch.Collection == records.Courses && slices.Contains(u.Courses, id):
				want[k] = data
			case u.Role == scope.Teacher && ch.Collection == records.Enrolments && slices.Contains(u.Courses, course):
				want[k] = data
			case u.Role == scope.Teacher && ch.Collection == records.Persons && data["given_name"] != nil &&
				slices.ContainsFunc(u.Courses, func(c string) bool { return active[c+"/"+id] }):
				want[k] = map[string]json.RawMessage{"given_name": data["given_name"]}
			}
		}
		got := contents(t, devices[i])
		for k, w := range want {
			if g, ok := got[k]; !ok {
				t.Errorf("seed %d: %s lacks %s", seed, u.Name, k)
				if testing.Verbose() {
					coll, id, _ := cut(k)
					h, _ := srv.Store.History(ctx, coll, id)
					for _, w := range h {
						t.Logf("  %s seq %d %s %s", k, w.Seq, w.Op, w.Data)
					}
					for _, c := range courses {
						h, _ := srv.Store.History(ctx, records.Enrolments, records.EnrolmentID(c, id))
						for _, w := range h {
							t.Logf("  enrolment in %s seq %d %s %s", c[:8], w.Seq, w.Op, w.Data)
						}
					}
				}
			} else if !equalData(g, w) {
				t.Errorf("seed %d: %s holds %s as %s, want %s", seed, u.Name, k, jsonOf(g), jsonOf(w))
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("seed %d: %s holds %s, outside its scopes", seed, u.Name, k)
			}
		}
	}
}

// isGone reports a write refused because its person was deleted meanwhile:
// a move alone does not make an intake form.
func isGone(err error) bool { return errors.Is(err, client.ErrInvalidWrite) }

func cut(k string) (string, string, bool) {
	for i := range k {
		if k[i] == '/' {
			return k[:i], k[i+1:], true
		}
	}
	return k, "", false
}

func hasData(ch syncproto.Change) bool { return len(ch.Data) > 2 }

func contents(t *testing.T, c *client.Client) map[string]map[string]json.RawMessage {
	t.Helper()
	rows, err := c.Query(context.Background(), `SELECT collection, id, data FROM records`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]map[string]json.RawMessage{}
	for rows.Next() {
		var coll, id string
		var data []byte
		if err := rows.Scan(&coll, &id, &data); err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		json.Unmarshal(data, &m)
		out[coll+"/"+id] = m
	}
	return out
}

func equalData(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if string(b[k]) != string(v) {
			return false
		}
	}
	return true
}

func jsonOf(m map[string]json.RawMessage) string { b, _ := json.Marshal(m); return string(b) }
