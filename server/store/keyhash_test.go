package store

import (
	"context"
	"encoding/json"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/syncproto"
)

var testNode = "0123456789abcdef0123456789abcdef"

// mustOpen opens a store in a new file of the test's; it closes with the test.
func mustOpen(t *testing.T) *Store {
	t.Helper()
	st, err := Open(context.Background(), filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func putPerson(t *testing.T, st *Store, id, name string, wall int64) {
	t.Helper()
	res, err := st.Apply(context.Background(), Actor{User: "u", Node: testNode, Scopes: []string{scope.All}},
		[]syncproto.Mutation{{ID: uuid.Must(uuid.NewV7()).String(), Collection: "persons", Record: id, Op: syncproto.OpPut,
			Data: map[string]json.RawMessage{"given_name": json.RawMessage(`"` + name + `"`)}, Stamp: syncproto.Stamp{Wall: wall, Node: testNode}}})
	if err != nil || res[0].Status != syncproto.StatusApplied {
		t.Fatalf("put %s: %v %+v", id, err, res)
	}
}

func givenName(t *testing.T, st *Store, id string) string {
	t.Helper()
	rec, _, err := st.Get(context.Background(), "persons", id)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	_ = json.Unmarshal(rec.Data["given_name"], &name)
	return name
}

// TestStore_RecordsSharingAHash checks that a lookup by key hash compares
// the key as well: a record stored under another key's hash (set here by
// hand, as SHA-256 gives no collision to find) is neither found for that
// key nor replaced by its record.
func TestStore_RecordsSharingAHash(t *testing.T) {
	ctx := context.Background()
	st := mustOpen(t)
	putPerson(t, st, "decoy", "Decoy", 1)
	if _, err := st.db.Writer.ExecContext(ctx, `UPDATE records SET key_hash = key_hash('persons', 'real') WHERE id = 'decoy'`); err != nil {
		t.Fatal(err)
	}
	if _, seq, err := st.Get(ctx, "persons", "real"); err != nil || seq != 0 {
		t.Fatalf("real before it was written: seq %d (%v), want none", seq, err)
	}
	putPerson(t, st, "real", "Amina", 2) // new: must not update the decoy
	putPerson(t, st, "real", "Amina B", 3)
	if got := givenName(t, st, "real"); got != "Amina B" {
		t.Errorf("real: given_name %q, want Amina B", got)
	}
	var decoy string
	if err := st.db.Reader.QueryRowContext(ctx, `SELECT data->>'given_name' FROM records WHERE id = 'decoy'`).Scan(&decoy); err != nil || decoy != "Decoy" {
		t.Errorf("decoy: given_name %q (%v), want Decoy", decoy, err)
	}
	var n int
	if err := st.db.Reader.QueryRowContext(ctx, `SELECT count(*) FROM records`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d records (%v), want 2", n, err)
	}
	if got, err := st.CountMutations(ctx, "persons", "real"); err != nil || got != 2 {
		t.Errorf("real: %d mutations (%v), want 2", got, err)
	}
}

// TestStore_LooksUpRecordsByHash checks that the queries finding one record
// by its key use records_by_hash rather than scanning the table.
func TestStore_LooksUpRecordsByHash(t *testing.T) {
	ctx := context.Background()
	st := mustOpen(t)
	for name, q := range map[string]string{
		"by key":  `SELECT data FROM records WHERE ` + byKey,
		"history": `SELECT m.id FROM mutations m JOIN records r ON r.rid = m.record WHERE r.key_hash = key_hash(?1, ?2) AND +r.collection = ?1 AND r.id = ?2`,
		"register": `SELECT p.data FROM records e LEFT JOIN records p ON p.key_hash = key_hash('persons', e.data->>'person_id')
			AND +p.collection = 'persons' AND p.id = e.data->>'person_id' WHERE e.key_hash = key_hash(?1, ?2) AND +e.collection = ?1 AND e.id = ?2`,
	} {
		rows, err := st.db.Reader.QueryContext(ctx, `EXPLAIN QUERY PLAN `+q, "persons", "p1")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		plan, err := sqlitedb.QueryPlan(rows)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(plan, "; "), "records_by_hash") || strings.Contains(strings.Join(plan, "; "), "SCAN") {
			t.Errorf("%s: plan %q, want records_by_hash and no scan", name, plan)
		}
	}
}

// TestStore_MigrationHashesStoredRecords opens a store made before key
// hashes and inline scopes (migrations up to 0004) holding a record: the
// migrations fill its hash and its scopes, and the record is found.
func TestStore_MigrationHashesStoredRecords(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	old := fstest.MapFS{}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if filepath.Base(name) < "0005" {
			b, err := fs.ReadFile(migrations, name)
			if err != nil {
				t.Fatal(err)
			}
			old[name] = &fstest.MapFile{Data: b}
		}
	}
	db, err := sqlitedb.Open(ctx, path, sqlitedb.SyncFull)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, old, "migrations"); err != nil {
		t.Fatal(err)
	}
	stamp := syncproto.Stamp{Wall: 1, Node: testNode}
	if _, err := db.Writer.ExecContext(ctx, `INSERT INTO records (seq, rid, collection, id, data, stamps)
		VALUES (1, 1, 'persons', 'p1', '{"given_name":"Amina","site_id":"s1"}', ?)`,
		string(syncproto.EncodeStamps(map[string]syncproto.Stamp{"given_name": stamp, "site_id": stamp}))); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"site:s1", "register:c1"} {
		if _, err := db.Writer.ExecContext(ctx, `INSERT INTO record_scopes (scope, rid, seq) VALUES (?, 1, 1)`, k); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	st, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var hash int64
	if err := st.db.Reader.QueryRowContext(ctx, `SELECT key_hash FROM records WHERE rid = 1`).Scan(&hash); err != nil || hash != sqlitedb.KeyHash("persons", "p1") {
		t.Fatalf("key_hash %d (%v), want %d", hash, err, sqlitedb.KeyHash("persons", "p1"))
	}
	if got := givenName(t, st, "p1"); got != "Amina" {
		t.Errorf("given_name %q after the migration, want Amina", got)
	}
	var keys string
	if err := st.db.Reader.QueryRowContext(ctx, `SELECT scopes FROM records WHERE rid = 1`).Scan(&keys); err != nil || keys != "register:c1 site:s1" {
		t.Errorf("scopes %q after the migration (%v), want register:c1 site:s1", keys, err)
	}
	putPerson(t, st, "p1", "Amina B", 2) // an update, not a second record
	if got := givenName(t, st, "p1"); got != "Amina B" {
		t.Errorf("given_name %q, want Amina B", got)
	}
}

// TestStore_RecordRowsHoldTheirScopes follows a person through a site
// move, an enrolment, its withdrawal and a delete, and checks after each
// step that every record's row holds the scopes record_scopes gives it.
func TestStore_RecordRowsHoldTheirScopes(t *testing.T) {
	ctx := context.Background()
	st := mustOpen(t)
	actor := Actor{User: "u", Node: testNode, Scopes: []string{scope.All}}
	wall := int64(0)
	write := func(collection, id string, op syncproto.Op, fields string) {
		t.Helper()
		wall++
		m := syncproto.Mutation{ID: uuid.Must(uuid.NewV7()).String(), Collection: collection, Record: id, Op: op,
			Stamp: syncproto.Stamp{Wall: wall, Node: testNode}}
		if fields != "" {
			if err := json.Unmarshal([]byte(fields), &m.Data); err != nil {
				t.Fatal(err)
			}
		}
		res, err := st.Apply(ctx, actor, []syncproto.Mutation{m})
		if err != nil || res[0].Status != syncproto.StatusApplied {
			t.Fatalf("%s %s/%s: %v %+v", op, collection, id, err, res)
		}
		rows, err := st.db.Reader.QueryContext(ctx, `SELECT r.collection, r.id, r.scopes,
			coalesce((SELECT group_concat(scope, ' ' ORDER BY scope) FROM record_scopes s WHERE s.rid = r.rid), '') FROM records r`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var c, id, inRow, inTable string
			if err := rows.Scan(&c, &id, &inRow, &inTable); err != nil {
				t.Fatal(err)
			}
			if inRow != inTable {
				t.Errorf("after %s %s: %s/%s holds scopes %q, record_scopes gives %q", op, fields, c, id, inRow, inTable)
			}
		}
	}
	write("persons", "p1", syncproto.OpPut, `{"site_id":"s1","given_name":"Amina"}`)
	write("courses", "c1", syncproto.OpPut, `{"title":{"it":"Italiano A1"}}`)
	write("enrolments", "e1", syncproto.OpPut, `{"course_id":"c1","person_id":"p1"}`)
	write("persons", "p1", syncproto.OpPut, `{"site_id":"s2"}`)
	write("enrolments", "e1", syncproto.OpPut, `{"status":"withdrawn"}`)
	write("enrolments", "e2", syncproto.OpPut, `{"course_id":"c1","person_id":"p1"}`)
	write("persons", "p1", syncproto.OpDelete, "")
	var keys string
	if err := st.db.Reader.QueryRowContext(ctx, `SELECT scopes FROM records WHERE id = 'p1'`).Scan(&keys); err != nil ||
		keys != scope.Register("c1")+" "+scope.Site("s2") {
		t.Errorf("deleted person's scopes %q (%v), want register:c1 and site:s2", keys, err)
	}
}
