package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ponte-project/ponte/server/scope"
	"github.com/ponte-project/ponte/server/store"
	"github.com/ponte-project/ponte/syncproto"
)

func TestStore_UsersAndSites(t *testing.T) {
	st := mustOpen(t, filepath.Join(t.TempDir(), "s.db"), store.Options{})
	ctx := context.Background()
	tor, err := st.AddSite(ctx, "Sportello Tor Pignattara")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddSite(ctx, "Sportello Tor Pignattara"); !errors.Is(err, store.ErrExists) {
		t.Errorf("a site name twice: %v, want ErrExists", err)
	}
	course := uuid.NewString()
	for _, tt := range []struct {
		name string
		u    store.User
		want error
	}{
		{"mediator", store.User{Name: "giulia", Role: scope.Mediator, Sites: []string{tor}}, nil},
		{"teacher", store.User{Name: "marco", Role: scope.Teacher, Courses: []string{course}}, nil},
		{"coordinator", store.User{Name: "anna", Role: scope.Coordinator}, nil},
		{"admin", store.User{Name: "it", Role: scope.Admin}, nil},
		{"taken", store.User{Name: "giulia", Role: scope.Coordinator}, store.ErrExists},
		{"mediator without a site", store.User{Name: "x", Role: scope.Mediator}, syncproto.ErrInvalid},
		{"teacher without a course", store.User{Name: "x", Role: scope.Teacher}, syncproto.ErrInvalid},
		{"unknown role", store.User{Name: "x", Role: "boss"}, syncproto.ErrInvalid},
		{"unknown site", store.User{Name: "x", Role: scope.Mediator, Sites: []string{uuid.NewString()}}, store.ErrNotFound},
		{"empty name", store.User{Role: scope.Admin}, syncproto.ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := st.AddUser(ctx, tt.u); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("AddUser = %v, want %v", err, tt.want)
			}
		})
	}
	u, err := st.GetUser(ctx, "giulia")
	if err != nil || u.Role != scope.Mediator || !slices.Equal(u.Sites, []string{tor}) {
		t.Errorf("GetUser = %+v, %v", u, err)
	}
	if _, err := st.GetUser(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a user refused is not stored: %v", err)
	}
}

func TestStore_EnrolmentCodes(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	st := mustOpen(t, filepath.Join(t.TempDir(), "s.db"), store.Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	if err := st.AddUser(ctx, store.User{Name: "anna", Role: scope.Coordinator}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.IssueEnrolmentCode(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("code for an unknown user: %v", err)
	}
	code, expires, err := st.IssueEnrolmentCode(ctx, "anna")
	if err != nil || !regexp.MustCompile(`^[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}$`).MatchString(code) ||
		!expires.Equal(now.Add(store.EnrolmentCodeTTL)) {
		t.Fatalf("code = %q expiring %v, %v", code, expires, err)
	}
	nodeA, nodeB := strings.Repeat("a", 32), strings.Repeat("b", 32)
	// Typed in lower case without dashes: the same code.
	d, token, err := st.Enrol(ctx, strings.ToLower(strings.ReplaceAll(code, "-", "")), nodeA)
	if err != nil || d.User != "anna" || d.Node != nodeA {
		t.Fatalf("enrol = %+v, %v", d, err)
	}
	if got, err := st.Authenticate(ctx, token, nodeA); err != nil || got.ID != d.ID {
		t.Fatalf("the enrolled token: %+v, %v", got, err)
	}
	if _, err := st.Authenticate(ctx, token, nodeB); !errors.Is(err, syncproto.ErrUnauthorized) {
		t.Errorf("the token from another replica: %v", err)
	}
	if _, _, err := st.Enrol(ctx, code, nodeB); !errors.Is(err, syncproto.ErrUnauthorized) {
		t.Errorf("a code used twice: %v, want ErrUnauthorized", err)
	}
	if _, _, err := st.Enrol(ctx, "AAAA-BBBB-CCCC", nodeB); !errors.Is(err, syncproto.ErrUnauthorized) {
		t.Errorf("an unknown code: %v", err)
	}
	late, _, _ := st.IssueEnrolmentCode(ctx, "anna")
	now = now.Add(store.EnrolmentCodeTTL + time.Minute)
	if _, _, err := st.Enrol(ctx, late, nodeB); !errors.Is(err, syncproto.ErrUnauthorized) {
		t.Errorf("an expired code: %v", err)
	}
	fresh, _, _ := st.IssueEnrolmentCode(ctx, "anna")
	if _, _, err := st.Enrol(ctx, fresh, nodeA); !errors.Is(err, syncproto.ErrUnauthorized) {
		t.Errorf("enrolling a replica that already belongs to a device: %v", err)
	}
}

func TestStore_RevokeDevice(t *testing.T) {
	st := mustOpen(t, filepath.Join(t.TempDir(), "s.db"), store.Options{})
	ctx := context.Background()
	if err := st.AddUser(ctx, store.User{Name: "anna", Role: scope.Coordinator}); err != nil {
		t.Fatal(err)
	}
	id, token, err := st.IssueToken(ctx, "anna")
	if err != nil {
		t.Fatal(err)
	}
	keep, _, _ := st.IssueToken(ctx, "anna")
	if _, err := st.Authenticate(ctx, token, node); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeDevice(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeDevice(ctx, id); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	if err := st.RevokeDevice(ctx, uuid.NewString()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking an unknown device: %v", err)
	}
	if _, err := st.Authenticate(ctx, token, node); !errors.Is(err, syncproto.ErrRevoked) {
		t.Errorf("a revoked device connects: %v, want ErrRevoked", err)
	}
	if got, err := st.Revoked(ctx, []string{id, keep}); err != nil || !slices.Equal(got, []string{id}) {
		t.Errorf("Revoked = %v, %v", got, err)
	}
	ds, err := st.Devices(ctx)
	if err != nil || len(ds) != 2 || ds[0].ID != id || ds[0].Revoked == nil || ds[0].LastSeen == nil || ds[1].Revoked != nil {
		t.Errorf("Devices = %+v, %v", ds, err)
	}
}
