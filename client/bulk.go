package client

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ponte-project/ponte/internal/sqlitedb"
	"github.com/ponte-project/ponte/syncproto"
)

// A catch-up into an empty replica defers the secondary indexes its rows
// would enter (persons_by_site for intake forms): rows are then appended
// without updating them, and each index is built once, sorted, when the
// catch-up ends, instead of entry by entry. Keeping persons_by_site up to
// date cost ~2.1 µs of CPU per intake form, over a fifth of applying it;
// building it afterwards costs ~1.2 µs per form (first sync of 100,000
// forms: ~89,000 → ~100,000 a second). Unique indexes are never deferred:
// they are what finds the record a change updates.
//
// The definitions wait in meta under deferredIndexes, in the transaction
// that drops them, until they are built again: at the end of the catch-up,
// when the session ends before that, or when the replica is next opened
// after a crash. Queries work meanwhile, only slower.
const deferredIndexes = "deferred_indexes"

type indexDef struct {
	Name string `json:"name"`
	SQL  string `json:"sql"`
}

// deferIndexes drops, if the replica holds no records, the non-unique
// indexes of replica_records that the pages' collections would enter, and
// keeps their definitions. It reports whether it dropped any.
func deferIndexes(ctx context.Context, tx *sqlitedb.Tx, pages []*syncproto.Page) (bool, error) {
	var empty, deferred bool
	if err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM replica_records),
		EXISTS (SELECT 1 FROM meta WHERE key = ?)`, deferredIndexes).Scan(&empty, &deferred); err != nil {
		return false, fmt.Errorf("defer indexes: %w", err)
	}
	if deferred { // an earlier build failed: its list stands, and is built at the end
		return true, nil
	}
	if !empty {
		return false, nil
	}
	collections := map[string]bool{}
	for _, p := range pages {
		for i := range p.Changes {
			collections[p.Changes[i].Collection] = true
		}
	}
	rows, err := tx.Query(ctx, `SELECT name, sql FROM sqlite_schema WHERE type = 'index'
		AND tbl_name = 'replica_records' AND sql LIKE 'CREATE INDEX %' ORDER BY name`)
	if err != nil {
		return false, fmt.Errorf("defer indexes: %w", err)
	}
	var defs []indexDef
	for rows.Next() {
		var d indexDef
		if err := rows.Scan(&d.Name, &d.SQL); err != nil {
			rows.Close()
			return false, fmt.Errorf("defer indexes: %w", err)
		}
		if enters(d.SQL, collections) {
			defs = append(defs, d)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("defer indexes: %w", err)
	}
	if len(defs) == 0 {
		return false, nil
	}
	b, err := json.Marshal(defs)
	if err != nil {
		return false, fmt.Errorf("defer indexes: %w", err)
	}
	if err := setMeta(ctx, tx, deferredIndexes, string(b)); err != nil {
		return false, fmt.Errorf("defer indexes: %w", err)
	}
	for _, d := range defs {
		if _, err := tx.Exec(ctx, `DROP INDEX "`+strings.ReplaceAll(d.Name, `"`, `""`)+`"`); err != nil {
			return false, fmt.Errorf("defer index %s: %w", d.Name, err)
		}
	}
	return true, nil
}

// enters reports whether rows of the collections may enter the index
// defined by def: all do, unless it is limited to other collections (the
// migrations write that limit as collection = 'name').
func enters(def string, collections map[string]bool) bool {
	if !strings.Contains(def, "collection = '") {
		return true
	}
	for c := range collections {
		if strings.Contains(def, "collection = '"+c+"'") {
			return true
		}
	}
	return false
}

// buildDeferredIndexes builds the indexes deferIndexes dropped, if any.
func buildDeferredIndexes(ctx context.Context, tx *sqlitedb.Tx) error {
	var b string
	switch err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = ?`, deferredIndexes).Scan(&b); {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("build deferred indexes: %w", err)
	}
	var defs []indexDef
	if err := json.Unmarshal([]byte(b), &defs); err != nil {
		return fmt.Errorf("build deferred indexes: %w", err)
	}
	for _, d := range defs {
		if _, err := tx.Exec(ctx, d.SQL); err != nil {
			return fmt.Errorf("build index %s: %w", d.Name, err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM meta WHERE key = ?`, deferredIndexes); err != nil {
		return fmt.Errorf("build deferred indexes: %w", err)
	}
	return nil
}

// buildIndexesLeftDeferred builds, when a replica is opened, the indexes a
// catch-up deferred if the process ended before it could build them.
func buildIndexesLeftDeferred(ctx context.Context, db *sqlitedb.DB) error {
	var pending bool // a new file has no meta table yet
	err := db.Writer.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta')`).Scan(&pending)
	if err == nil && pending {
		err = db.Writer.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM meta WHERE key = ?)`, deferredIndexes).Scan(&pending)
	}
	if err != nil || !pending {
		return err
	}
	tx, err := db.BeginWrite(ctx, sqlitedb.SyncFull)
	if err != nil {
		return err
	}
	defer tx.Close()
	defer tx.Rollback()
	if err := buildDeferredIndexes(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}
