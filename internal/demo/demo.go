// Package demo fills an empty Ponte server with a realistic programme to
// look at: three sites, mediators, teachers, a coordinator and an admin,
// a few hundred persons with names in many scripts, appointments, three
// language courses with their lessons and attendance, and a few conflicts
// waiting for a decision. `ponte serve --demo` runs it on an empty
// database; real deployments start empty.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/internal/sampledata"
	"github.com/ponte-project/ponte/records"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

// Password is the demo coordinator's and admin's password.
const Password = "ponte-demo-2026"

// Logins are the accounts the demo creates for the web pages.
type Logins struct {
	Coordinator, Admin, Password string
}

// ErrNotEmpty is returned by Populate for a store that already holds
// records or devices: the demo never mixes with real data.
var ErrNotEmpty = errors.New("the database is not empty")

// Populate fills an empty store with the demo programme as of now, from
// seed. Every record passes records.Schema and is written as its author's
// device would write it, so the audit trail, scopes and conflicts are real.
func Populate(ctx context.Context, st *store.Store, seed uint64, now time.Time) (Logins, error) {
	stats, err := st.Stats(ctx)
	if err != nil {
		return Logins{}, fmt.Errorf("demo: %w", err)
	}
	if stats.Records > 0 || stats.Devices > 0 {
		return Logins{}, fmt.Errorf("demo: %w", ErrNotEmpty)
	}
	d := &builder{st: st, r: rand.New(rand.NewPCG(seed, 2026)), now: now, devices: map[string]store.Actor{}}
	if err := d.build(ctx); err != nil {
		return Logins{}, fmt.Errorf("demo: %w", err)
	}
	return Logins{Coordinator: "coordinatrice", Admin: "admin", Password: Password}, nil
}

type builder struct {
	st      *store.Store
	r       *rand.Rand
	now     time.Time
	devices map[string]store.Actor // user → their tablet
	clocks  map[string]*syncproto.Clock
	muts    map[string][]pending // user → writes not applied yet
}

// pending is a queued write; seen says its writer had the record in view.
type pending struct {
	m    syncproto.Mutation
	seen bool
}

func (d *builder) build(ctx context.Context) error {
	siteNames := []string{"Sportello Roma Esquilino", "Associazione Latina Insieme", "CPIA Frosinone"}
	sites := make([]string, len(siteNames))
	for i, n := range siteNames {
		id, err := d.st.AddSite(ctx, n)
		if err != nil {
			return err
		}
		sites[i] = id
	}
	courses := []string{d.id(), d.id(), d.id()}
	for _, u := range []store.User{
		{Name: "coordinatrice", Role: scope.Coordinator},
		{Name: "admin", Role: scope.Admin},
		{Name: "giulia", Role: scope.Mediator, Sites: []string{sites[0]}},
		{Name: "ahmed", Role: scope.Mediator, Sites: []string{sites[0], sites[1]}},
		{Name: "oksana", Role: scope.Mediator, Sites: []string{sites[1], sites[2]}},
		{Name: "marco", Role: scope.Teacher, Courses: courses[:2]},
		{Name: "sara", Role: scope.Teacher, Courses: courses[2:]},
	} {
		if err := d.st.AddUser(ctx, u); err != nil {
			return err
		}
	}
	for _, u := range []string{"coordinatrice", "admin"} {
		if err := d.st.SetPassword(ctx, u, Password); err != nil {
			return err
		}
	}
	for _, u := range []string{"coordinatrice", "giulia", "ahmed", "oksana", "marco", "sara"} {
		if err := d.tablet(ctx, u); err != nil {
			return err
		}
	}
	mediatorsOf := map[string][]string{sites[0]: {"giulia", "ahmed"}, sites[1]: {"ahmed", "oksana"}, sites[2]: {"oksana"}}

	// Intake forms, written at their sites' mediators' tablets.
	persons := make([]string, 300)
	siteOf := map[string]string{}
	for i := range persons {
		persons[i] = d.id()
		site := sites[d.r.IntN(len(sites))]
		siteOf[persons[i]] = site
		p := sampledata.Person(d.r, []string{site})
		p["consent_date"] = d.day(-d.r.IntN(300))
		d.put(pick(d.r, mediatorsOf[site]), records.Persons, persons[i], p)
	}
	if err := d.flush(ctx); err != nil {
		return err
	}
	// Appointments over the last two months and the next two weeks.
	for range 400 {
		p := persons[d.r.IntN(len(persons))]
		site := siteOf[p]
		mediator := pick(d.r, mediatorsOf[site])
		start := d.now.Truncate(24*time.Hour).AddDate(0, 0, d.r.IntN(74)-60).Add(time.Duration(8*60+15*d.r.IntN(36)) * time.Minute)
		status := "scheduled"
		if start.Before(d.now) {
			status = []string{"held", "held", "held", "held", "no_show", "cancelled"}[d.r.IntN(6)]
		}
		a := map[string]any{"person_id": p, "mediator": mediator, "site_id": site, "start": start.Format(time.RFC3339),
			"end": start.Add(45 * time.Minute).Format(time.RFC3339), "status": status,
			"kind":                  []string{"orientation", "mediation", "legal", "job", "school", "health", "housing"}[d.r.IntN(7)],
			"interpreting_language": []string{"ar", "uk", "bn", "ti", "fa", "ps", "ur", "zh", "sq", "pa"}[d.r.IntN(10)]}
		if status == "held" {
			a["outcome_notes"] = "follow-up agreed"
		}
		d.put(mediator, records.Appointments, d.id(), a)
	}
	// Three courses, twice a week since eight weeks ago, 30 lessons each.
	titles := []map[string]string{
		{"it": "Italiano A1 — serale", "en": "Italian A1 — evening", "ar": "الإيطالية A1 — مسائي"},
		{"it": "Italiano A2 per il lavoro", "en": "Italian A2 for work", "uk": "Італійська A2 для роботи"},
		{"it": "Italiano B1 — preparazione certificazione", "en": "Italian B1 — certificate preparation"},
	}
	levels := []string{"A1", "A2", "B1"}
	courseSite := []string{sites[2], sites[0], sites[1]}
	teacherOf := []string{"marco", "marco", "sara"}
	first := d.now.Truncate(24*time.Hour).AddDate(0, 0, -56).Add(17 * time.Hour)
	for c, course := range courses {
		d.put("coordinatrice", records.Courses, course, map[string]any{"title": titles[c], "level": levels[c],
			"site_id": courseSite[c], "teachers": []string{teacherOf[c]}, "planned_hours": 60, "certificate_attendance": 0.7,
			"start_date": first.Format(time.DateOnly), "end_date": first.AddDate(0, 0, 105).Format(time.DateOnly)})
		enrolled := make([]string, 0, 20)
		for len(enrolled) < 20 {
			if p := persons[d.r.IntN(len(persons))]; !contains(enrolled, p) {
				enrolled = append(enrolled, p)
			}
		}
		for _, p := range enrolled {
			d.put("coordinatrice", records.Enrolments, records.EnrolmentID(course, p), map[string]any{
				"course_id": course, "person_id": p, "status": "active", "enrolled_date": first.AddDate(0, 0, -7).Format(time.DateOnly)})
		}
		// Each person's own habit: most attend, some drift away.
		habit := make([]float64, len(enrolled))
		for i := range habit {
			habit[i] = []float64{0.95, 0.9, 0.85, 0.8, 0.6, 0.4}[d.r.IntN(6)]
		}
		for j := range 30 {
			lesson := d.id()
			start := first.AddDate(0, 0, 3*j+(j%2))
			d.put("coordinatrice", records.Lessons, lesson, map[string]any{"course_id": course, "start": start.Format(time.RFC3339),
				"duration_minutes": 120, "topic": fmt.Sprintf("Unità %d", j/3+1)})
			if start.After(d.now) {
				continue
			}
			for i, p := range enrolled {
				mark := records.MarkAbsent
				switch x := d.r.Float64(); {
				case x < habit[i]*0.9:
					mark = records.MarkPresent
				case x < habit[i]:
					mark = records.MarkLate
				case x < habit[i]+0.05:
					mark = records.MarkExcused
				}
				d.put(teacherOf[c], records.Attendance, records.AttendanceID(lesson, p), map[string]any{
					"lesson_id": lesson, "course_id": course, "person_id": p, "mark": mark, "marked_by": teacherOf[c],
					"marked_at": start.Add(10 * time.Minute).Format(time.RFC3339)})
			}
		}
	}
	if err := d.flush(ctx); err != nil {
		return err
	}
	// Conflicts: two mediators of a site update the same field offline.
	for _, p := range persons[:6] {
		a, b := mediatorsOf[siteOf[p]][0], pick(d.r, []string{"coordinatrice", mediatorsOf[siteOf[p]][len(mediatorsOf[siteOf[p]])-1]})
		if a == b {
			b = "coordinatrice"
		}
		d.putBlind(a, records.Persons, p, map[string]any{"phone": fmt.Sprintf("+39%010d", d.r.Int64N(1e10))})
		d.putBlind(b, records.Persons, p, map[string]any{"phone": fmt.Sprintf("+39%010d", d.r.Int64N(1e10))})
		if err := d.flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

// tablet registers a device for user, bound to a replica node of its own.
func (d *builder) tablet(ctx context.Context, user string) error {
	_, token, err := d.st.IssueToken(ctx, user)
	if err != nil {
		return err
	}
	node := syncproto.NewNode()
	dev, err := d.st.Authenticate(ctx, token, node)
	if err != nil {
		return err
	}
	u, err := d.st.GetUser(ctx, user)
	if err != nil {
		return err
	}
	if d.clocks == nil {
		d.clocks, d.muts = map[string]*syncproto.Clock{}, map[string][]pending{}
	}
	d.devices[user] = store.Actor{User: user, Device: dev.ID, Node: node, Scopes: scope.Of(u.Role, u.Sites, u.Courses)}
	d.clocks[user] = syncproto.NewClock(node, time.Now)
	return nil
}

// put queues a write by user's tablet that saw the record as the server
// holds it (no conflict).
func (d *builder) put(user, collection, id string, fields map[string]any) {
	d.queue(user, collection, id, fields, true)
}

// putBlind queues a write made offline, not knowing the last version of
// the fields it sets: if another device set them meanwhile, a conflict.
func (d *builder) putBlind(user, collection, id string, fields map[string]any) {
	d.queue(user, collection, id, fields, false)
}

func (d *builder) queue(user, collection, id string, fields map[string]any, seen bool) {
	data := make(map[string]json.RawMessage, len(fields))
	for k, v := range fields {
		data[k], _ = json.Marshal(v)
	}
	m := syncproto.Mutation{ID: uuid.Must(uuid.NewV7()).String(), Collection: collection, Record: id,
		Op: syncproto.OpPut, Data: data, Stamp: d.clocks[user].Now()}
	d.muts[user] = append(d.muts[user], pending{m: m, seen: seen})
}

// flush applies the queued writes, each tablet's in one push.
func (d *builder) flush(ctx context.Context) error {
	for _, user := range []string{"coordinatrice", "giulia", "ahmed", "oksana", "marco", "sara"} {
		muts := d.muts[user]
		delete(d.muts, user)
		for len(muts) > 0 {
			n := min(len(muts), syncproto.MaxBatch)
			batch := make([]syncproto.Mutation, n)
			for i, p := range muts[:n] {
				batch[i] = p.m
				if !p.seen {
					continue
				}
				// Written with the record in view: its base is what the
				// server holds.
				rec, _, err := d.st.Get(ctx, p.m.Collection, p.m.Record)
				if err != nil {
					return err
				}
				batch[i].Base = map[string]syncproto.Stamp{}
				for f := range p.m.Data {
					if s, ok := rec.Stamps[f]; ok {
						batch[i].Base[f] = s
					}
				}
			}
			muts = muts[n:]
			results, err := d.st.Apply(ctx, d.devices[user], batch)
			if err != nil {
				return err
			}
			for _, r := range results {
				if r.Status == syncproto.StatusRejected {
					return fmt.Errorf("%s's write %s refused: %s %s", user, r.ID, r.Code, r.Message)
				}
			}
		}
	}
	return nil
}

func (d *builder) id() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(d.r.Uint32())
	}
	return uuid.Must(uuid.FromBytes(b[:])).String() // not a canonical v4, but a valid UUID from the seed
}

func (d *builder) day(offset int) string {
	return d.now.AddDate(0, 0, offset).Format(time.DateOnly)
}

func pick(r *rand.Rand, from []string) string { return from[r.IntN(len(from))] }

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
