package store

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/syncproto"
)

// TestApply_StoresJSONAsText checks that record data, stamps and the logged
// data are SQLite text, which SQL's JSON functions read as JSON text (a
// blob would be read as binary JSON), though they are bound as bytes.
func TestApply_StoresJSONAsText(t *testing.T) {
	ctx := context.Background()
	st := mustOpen(t)
	node := "0123456789abcdef0123456789abcdef"
	id := uuid.NewString()
	muts := []syncproto.Mutation{
		{ID: uuid.NewString(), Collection: "persons", Record: id, Op: syncproto.OpPut,
			Data: map[string]json.RawMessage{"given_name": json.RawMessage(`"Amina"`)}, Stamp: syncproto.Stamp{Wall: 1, Node: node}},
		{ID: uuid.NewString(), Collection: "persons", Record: id, Op: syncproto.OpPut,
			Data: map[string]json.RawMessage{"family_name": json.RawMessage(`"Haddad"`)}, Stamp: syncproto.Stamp{Wall: 2, Node: node}},
	}
	if _, err := st.Apply(ctx, Actor{User: "u", Device: "d", Node: node, Scopes: []string{scope.All}}, muts); err != nil {
		t.Fatal(err)
	}
	var data, stamps, logged string
	if err := st.db.Reader.QueryRowContext(ctx, `SELECT typeof(data), typeof(stamps),
		(SELECT group_concat(DISTINCT typeof(data)) FROM mutations) FROM records`).Scan(&data, &stamps, &logged); err != nil {
		t.Fatal(err)
	}
	if data != "text" || stamps != "text" || logged != "text" {
		t.Errorf("stored as %s, %s and %s; want text", data, stamps, logged)
	}
}
