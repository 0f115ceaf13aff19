package syncproto_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ponte-project/ponte/syncproto"
)

const (
	mutID = "6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
	stamp = "018bcfe5680000030123456789abcdef0123456789abcdef"
)

// validFrames holds one valid frame of every message type.
var validFrames = map[syncproto.Type]string{
	syncproto.TypeHello: `{"type":"hello","re":1,"hello":{"protocol":1,"device":"` + nodeA +
		`","token":"t0k","lang":"de-CH","cursors":{"team":5,"user:1":0},"client":"ponte-ios/1.2","compression":["zstd"]}}`,
	syncproto.TypeWelcome: `{"type":"welcome","re":1,"welcome":{"protocol":1,"server":"` + nodeC + `","seq":42,"server_time":1700000000000,"user":"u1","scopes":["team","user:1"],"max_batch":1000,"compression":"zstd"}}`,
	syncproto.TypePush: `{"type":"push","re":2,"push":{"mutations":[` +
		`{"id":"` + mutID + `","collection":"notes","record":"n-1","op":"put","data":{"title":"Hi","body":{"x":[1,2]}},"stamp":"` + stamp + `","base":{"title":"` + stamp + `"}},` +
		`{"id":"7f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","collection":"notes","record":"n-2","op":"delete","stamp":"` + stamp + `"}]}}`,
	syncproto.TypeResult: `{"type":"result","re":2,"result":{"results":[` +
		`{"id":"` + mutID + `","status":"applied","seq":7,"conflicts":[{"field":"title","winner":{"value":"Hi","stamp":"` + stamp + `"},"loser":{"deleted":true,"stamp":"` + stamp + `"}}]},` +
		`{"id":"7f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f","status":"rejected","code":"forbidden","message":"nein"}]}}`,
	syncproto.TypePull: `{"type":"pull","re":3,"pull":{"cursors":{"team":5},"limit":100}}`,
	syncproto.TypePage: `{"type":"page","re":3,"page":{"changes":[` +
		`{"collection":"notes","id":"n-1","seq":6,"data":{"title":"Hi"},"stamps":{"*":"` + stamp + `"}},` +
		`{"collection":"notes","id":"n-2","seq":7,"deleted":"` + stamp + `"},` +
		`{"collection":"notes","id":"n-3","seq":8,"gone":true}],"cursors":{"team":8},"more":true}}`,
	syncproto.TypeChanges: `{"type":"changes","page":{"changes":[{"collection":"notes","id":"n-1","seq":9,"data":{"title":"Yo"},"stamps":{"*":"` + stamp + `"}}],"cursors":{"team":9}}}`,
	syncproto.TypeError:   `{"type":"error","error":{"code":"revoked","message":"Gerät gesperrt","fatal":true}}`,
	syncproto.TypePing:    `{"type":"ping","re":4,"ping":{"time":1700000000000}}`,
	syncproto.TypePong:    `{"type":"pong","re":4,"ping":{"time":1700000000001}}`,
}

func TestDecode_AcceptsEveryType(t *testing.T) {
	types := []syncproto.Type{syncproto.TypeHello, syncproto.TypeWelcome, syncproto.TypePush, syncproto.TypeResult,
		syncproto.TypePull, syncproto.TypePage, syncproto.TypeChanges, syncproto.TypeError, syncproto.TypePing, syncproto.TypePong}
	if len(types) != len(validFrames) {
		t.Fatalf("validFrames has %d entries, want %d", len(validFrames), len(types))
	}
	for _, typ := range types {
		t.Run(string(typ), func(t *testing.T) {
			frame := validFrames[typ]
			m, err := syncproto.Decode([]byte(frame))
			if err != nil {
				t.Fatalf("Decode(%s): %v", frame, err)
			}
			if m.Type != typ {
				t.Fatalf("Type = %q, want %q", m.Type, typ)
			}
			enc, err := syncproto.Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			m2, err := syncproto.Decode(enc)
			if err != nil {
				t.Fatalf("Decode(Encode(m)) of %s: %v", enc, err)
			}
			if !reflect.DeepEqual(m, m2) {
				t.Fatalf("round trip differs:\n%+v\n%+v\nvia %s", m, m2, enc)
			}
			enc2, err := syncproto.Encode(m2)
			if err != nil || !bytes.Equal(enc, enc2) {
				t.Fatalf("re-encoding not stable:\n%s\n%s (%v)", enc, enc2, err)
			}
			// The input frames are written in the canonical form.
			if !jsonTextSame(t, frame, string(enc)) {
				t.Fatalf("Encode = %s\nwant %s", enc, frame)
			}
		})
	}
}

// jsonTextSame reports whether a and b hold the same JSON value.
func jsonTextSame(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

func TestDecode_Contents(t *testing.T) {
	m, err := syncproto.Decode([]byte(validFrames[syncproto.TypePush]))
	if err != nil {
		t.Fatal(err)
	}
	mu := m.Push.Mutations[0]
	if mu.Stamp.String() != stamp || mu.Base["title"].String() != stamp || mu.Op != syncproto.OpPut {
		t.Fatalf("mutation = %+v", mu)
	}
	if string(mu.Data["body"]) != `{"x":[1,2]}` {
		t.Fatalf("data.body = %s", mu.Data["body"])
	}
	if m.Push.Mutations[1].Op != syncproto.OpDelete || m.Push.Mutations[1].Data != nil {
		t.Fatalf("delete = %+v", m.Push.Mutations[1])
	}
	p, err := syncproto.Decode([]byte(validFrames[syncproto.TypePage]))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := p.Page.Changes[0].Record()
	if err != nil || string(rec.Data["title"]) != `"Hi"` || rec.Stamps["title"].String() != stamp {
		t.Fatalf("change record = %+v, %v", rec, err)
	}
}

// frameWith returns the valid frame of typ with old replaced by new.
func frameWith(t *testing.T, typ syncproto.Type, old, new string) string {
	t.Helper()
	f := validFrames[typ]
	if !strings.Contains(f, old) {
		t.Fatalf("frame %s has no %q", typ, old)
	}
	return strings.Replace(f, old, new, 1)
}

func pushOf(n int, mut string) string {
	muts := make([]string, n)
	for i := range muts {
		muts[i] = mut
	}
	return `{"type":"push","push":{"mutations":[` + strings.Join(muts, ",") + `]}}`
}

func putMutation(id, collection, field, value string) string {
	return `{"id":"` + id + `","collection":"` + collection + `","record":"r","op":"put","data":{"` + field + `":` + value + `},"stamp":"` + stamp + `"}`
}

func TestDecode_RejectsBadMessages(t *testing.T) {
	okMut := putMutation(mutID, "notes", "title", `1`)
	tests := []struct {
		name  string
		frame string
	}{
		{"Empty", ``},
		{"InvalidJSON", `{"type":"ping",`},
		{"NotAnObject", `[1]`},
		{"Null", `null`},
		{"TrailingGarbage", validFrames[syncproto.TypePing] + `x`},
		{"InvalidUTF8", `{"type":"error","error":{"code":"internal","message":"` + "\xff\xfe" + `"}}`},
		{"UnknownType", `{"type":"bogus","ping":{"time":1}}`},
		{"NoType", `{"ping":{"time":1}}`},
		{"MissingBody", `{"type":"ping"}`},
		{"NullBody", `{"type":"ping","ping":null}`},
		{"WrongBody", `{"type":"ping","pull":{}}`},
		{"TwoBodies", `{"type":"ping","ping":{"time":1},"pull":{}}`},
		{"PongWithPage", `{"type":"pong","page":{"changes":[],"cursors":{}}}`},
		{"WrongFieldType", `{"type":"ping","ping":{"time":"now"}}`},
		{"NegativeRe", `{"type":"ping","re":-1,"ping":{"time":1}}`},
		{"HelloBadDevice", frameWith(t, syncproto.TypeHello, nodeA, strings.ToUpper(nodeA))},
		{"HelloLongToken", frameWith(t, syncproto.TypeHello, `"t0k"`, `"`+strings.Repeat("t", syncproto.MaxTokenLen+1)+`"`)},
		{"HelloNegativeCursor", frameWith(t, syncproto.TypeHello, `"team":5`, `"team":-5`)},
		{"HelloEmptyScope", frameWith(t, syncproto.TypeHello, `"team":5`, `"":5`)},
		{"MutationIDUppercase", pushOf(1, putMutation(strings.ToUpper(mutID), "notes", "title", `1`))},
		{"MutationIDBraced", pushOf(1, putMutation("{"+mutID+"}", "notes", "title", `1`))},
		{"MutationIDURN", pushOf(1, putMutation("urn:uuid:"+mutID, "notes", "title", `1`))},
		{"MutationIDNoHyphens", pushOf(1, putMutation(strings.ReplaceAll(mutID, "-", ""), "notes", "title", `1`))},
		{"MutationIDEmpty", pushOf(1, putMutation("", "notes", "title", `1`))},
		{"MutationIDNotUUID", pushOf(1, putMutation("not-a-uuid", "notes", "title", `1`))},
		{"PushNoMutations", `{"type":"push","push":{"mutations":[]}}`},
		{"PushNullMutations", `{"type":"push","push":{}}`},
		{"PushTooMany", pushOf(syncproto.MaxBatch+1, okMut)},
		{"PullLimitNegative", `{"type":"pull","pull":{"limit":-1}}`},
		{"PullLimitTooLarge", fmt.Sprintf(`{"type":"pull","pull":{"limit":%d}}`, syncproto.MaxPage+1)},
		{"PullNegativeCursor", `{"type":"pull","pull":{"cursors":{"team":-1}}}`},
		{"PullScopeTooLong", `{"type":"pull","pull":{"cursors":{"` + strings.Repeat("s", syncproto.MaxScopeLen+1) + `":1}}}`},
		{"PageNegativeCursor", frameWith(t, syncproto.TypePage, `"team":8`, `"team":-8`)},
		{"PageZeroSeq", frameWith(t, syncproto.TypePage, `"seq":6`, `"seq":0`)},
		{"PageBadCollection", frameWith(t, syncproto.TypePage, `"collection":"notes"`, `"collection":"No"`)},
		{"PageBadRecordID", frameWith(t, syncproto.TypePage, `"id":"n-1"`, `"id":"n 1"`)},
		{"PageBadDeletedStamp", frameWith(t, syncproto.TypePage, `"deleted":"`+stamp, `"deleted":"x`)},
		{"ErrorEmptyCode", `{"type":"error","error":{"code":"","message":"m"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := syncproto.Decode([]byte(tt.frame))
			if err == nil {
				t.Fatalf("Decode accepted %.200s: %+v", tt.frame, m)
			}
			if m != nil {
				t.Fatalf("Decode returned a message with error %v", err)
			}
			if !errors.Is(err, syncproto.ErrBadMessage) {
				t.Fatalf("Decode(%.200s) = %v, want ErrBadMessage", tt.frame, err)
			}
			t.Logf("%.300v", err)
		})
	}
}

// TestDecode_LeavesMutationContentToValidate: a push is refused only for its
// framing and mutation identifiers; each mutation's content is checked by
// Mutation.Validate when it is applied, so one bad write is rejected alone.
func TestDecode_LeavesMutationContentToValidate(t *testing.T) {
	okMut := putMutation(mutID, "notes", "title", `1`)
	big := `"` + strings.Repeat("x", syncproto.MaxMutationBytes) + `"`
	tests := []struct {
		name  string
		frame string
		want  error
	}{
		{"CollectionUppercase", pushOf(1, putMutation(mutID, "Notes", "title", `1`)), syncproto.ErrBadMessage},
		{"CollectionDigitFirst", pushOf(1, putMutation(mutID, "1notes", "title", `1`)), syncproto.ErrBadMessage},
		{"CollectionEmpty", pushOf(1, putMutation(mutID, "", "title", `1`)), syncproto.ErrBadMessage},
		{"CollectionTooLong", pushOf(1, putMutation(mutID, strings.Repeat("n", syncproto.MaxNameLen+1), "title", `1`)), syncproto.ErrBadMessage},
		{"CollectionHyphen", pushOf(1, putMutation(mutID, "my-notes", "title", `1`)), syncproto.ErrBadMessage},
		{"FieldUppercase", pushOf(1, putMutation(mutID, "notes", "Title", `1`)), syncproto.ErrBadMessage},
		{"FieldUnderscoreFirst", pushOf(1, putMutation(mutID, "notes", "_id", `1`)), syncproto.ErrBadMessage},
		{"FieldDot", pushOf(1, putMutation(mutID, "notes", "a.b", `1`)), syncproto.ErrBadMessage},
		{"FieldTooLong", pushOf(1, putMutation(mutID, "notes", strings.Repeat("f", syncproto.MaxNameLen+1), `1`)), syncproto.ErrBadMessage},
		{"RecordIDBad", pushOf(1, strings.Replace(okMut, `"record":"r"`, `"record":"a/b"`, 1)), syncproto.ErrBadMessage},
		{"RecordIDEmpty", pushOf(1, strings.Replace(okMut, `"record":"r"`, `"record":""`, 1)), syncproto.ErrBadMessage},
		{"RecordIDTooLong", pushOf(1, strings.Replace(okMut, `"record":"r"`, `"record":"`+strings.Repeat("r", syncproto.MaxIDLen+1)+`"`, 1)), syncproto.ErrBadMessage},
		{"BaseFieldBad", pushOf(1, strings.Replace(okMut, `"op"`, `"base":{"Bad":"`+stamp+`"},"op"`, 1)), syncproto.ErrBadMessage},
		{"NoStamp", pushOf(1, strings.Replace(okMut, `,"stamp":"`+stamp+`"`, ``, 1)), syncproto.ErrBadMessage},
		{"UnknownOp", pushOf(1, strings.Replace(okMut, `"op":"put"`, `"op":"upsert"`, 1)), syncproto.ErrBadMessage},
		{"PutWithoutData", pushOf(1, strings.Replace(okMut, `"data":{"title":1},`, ``, 1)), syncproto.ErrBadMessage},
		{"DeleteWithData", pushOf(1, strings.Replace(okMut, `"op":"put"`, `"op":"delete"`, 1)), syncproto.ErrBadMessage},
		{"MutationTooLarge", pushOf(1, putMutation(mutID, "notes", "title", big)), syncproto.ErrTooLarge},
		{"NotCompact", pushOf(1, putMutation(mutID, "notes", "title", ` { "a" : [ 1 , "b c" ] } `)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := syncproto.Decode([]byte(tt.frame))
			if err != nil {
				t.Fatalf("Decode(%.200s): %v", tt.frame, err)
			}
			mu := &m.Push.Mutations[0]
			if err := mu.Validate(); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
			if tt.want == nil {
				if got := string(mu.Data["title"]); got != `{"a":[1,"b c"]}` {
					t.Fatalf("Validate did not compact the value: %q", got)
				}
			}
		})
	}
	t.Run("OneBadMutationDoesNotRefuseTheBatch", func(t *testing.T) {
		bad := putMutation("7f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f", "Bad", "title", `1`)
		m, err := syncproto.Decode([]byte(`{"type":"push","push":{"mutations":[` + okMut + `,` + bad + `]}}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Push.Mutations[0].Validate(); err != nil {
			t.Fatalf("good mutation: %v", err)
		}
		if err := m.Push.Mutations[1].Validate(); !errors.Is(err, syncproto.ErrBadMessage) {
			t.Fatalf("bad mutation: %v", err)
		}
	})
}

func TestDecode_Limits(t *testing.T) {
	okMut := putMutation(mutID, "notes", "title", `1`)
	t.Run("PushOfMaxBatch", func(t *testing.T) {
		if _, err := syncproto.Decode([]byte(pushOf(syncproto.MaxBatch, okMut))); err != nil {
			t.Fatalf("push of MaxBatch mutations: %v", err)
		}
	})
	t.Run("PullLimitBounds", func(t *testing.T) {
		for _, n := range []int{0, 1, syncproto.MaxPage} {
			if _, err := syncproto.Decode(fmt.Appendf(nil, `{"type":"pull","pull":{"limit":%d}}`, n)); err != nil {
				t.Fatalf("pull limit %d: %v", n, err)
			}
		}
	})
	t.Run("NameOfMaxLen", func(t *testing.T) {
		name := strings.Repeat("n", syncproto.MaxNameLen)
		if _, err := syncproto.Decode([]byte(pushOf(1, putMutation(mutID, name, name, `1`)))); err != nil {
			t.Fatalf("names of MaxNameLen: %v", err)
		}
	})
	t.Run("FrameTooLarge", func(t *testing.T) {
		// A valid ping padded with whitespace to one byte over the limit.
		ping := validFrames[syncproto.TypePing]
		at := append([]byte(ping), bytes.Repeat([]byte(" "), syncproto.MaxFrameBytes-len(ping))...)
		if _, err := syncproto.Decode(at); err != nil {
			t.Fatalf("frame of exactly MaxFrameBytes: %v", err)
		}
		over := append(at, ' ')
		_, err := syncproto.Decode(over)
		if !errors.Is(err, syncproto.ErrTooLarge) {
			t.Fatalf("frame of MaxFrameBytes+1: %v, want ErrTooLarge", err)
		}
		if errors.Is(err, syncproto.ErrBadMessage) {
			t.Fatalf("ErrTooLarge also matches ErrBadMessage: %v", err)
		}
	})
	t.Run("PageTooLarge", func(t *testing.T) {
		ch := `{"collection":"c","id":"i","seq":1}`
		frame := `{"type":"page","page":{"changes":[` + strings.Repeat(ch+",", syncproto.MaxPage) + ch + `],"cursors":{}}}`
		if _, err := syncproto.Decode([]byte(frame)); !errors.Is(err, syncproto.ErrTooLarge) {
			t.Fatalf("page of MaxPage+1 changes: %v, want ErrTooLarge", err)
		}
	})
}

func TestDecode_ProtocolVersion(t *testing.T) {
	for _, v := range []string{"0", "2", "-1"} {
		t.Run(v, func(t *testing.T) {
			frame := frameWith(t, syncproto.TypeHello, `"protocol":1`, `"protocol":`+v)
			_, err := syncproto.Decode([]byte(frame))
			if !errors.Is(err, syncproto.ErrProtocolUnsupported) {
				t.Fatalf("hello protocol %s: %v, want ErrProtocolUnsupported", v, err)
			}
			if syncproto.ErrorCode(err) != syncproto.CodeProtocolUnsupported {
				t.Fatalf("ErrorCode = %q", syncproto.ErrorCode(err))
			}
		})
	}
}

func validMutation() syncproto.Mutation {
	return syncproto.Mutation{
		ID: mutID, Collection: "notes", Record: "n-1", Op: syncproto.OpPut,
		Data:  map[string]json.RawMessage{"title": json.RawMessage(` { "a" : [ 1 , 2 ] } `), "n": json.RawMessage(`1`)},
		Stamp: syncproto.Stamp{Wall: 1, Node: nodeA},
	}
}

// A pushed mutation whose fields have the wrong form does not fail the
// frame: it decodes with its id and is refused by its own Validate, so the
// rest of the batch can be applied.
func TestDecode_MistypedMutationIsRefusedAlone(t *testing.T) {
	for name, mut := range map[string]string{
		"BadStamp":   strings.Replace(putMutation(mutID, "notes", "title", `1`), stamp, strings.ToUpper(stamp), 1),
		"DataNumber": `{"id":"` + mutID + `","collection":"notes","record":"r","op":"put","data":5}`,
	} {
		t.Run(name, func(t *testing.T) {
			m, err := syncproto.Decode([]byte(pushOf(1, mut)))
			if err != nil {
				t.Fatalf("Decode = %v, want the frame accepted", err)
			}
			got := m.Push.Mutations[0]
			if got.ID != mutID {
				t.Fatalf("id = %q, want %q kept for the answer", got.ID, mutID)
			}
			if err := got.Validate(); !errors.Is(err, syncproto.ErrBadMessage) {
				t.Fatalf("Validate = %v, want ErrBadMessage", err)
			}
		})
	}
}

func TestMutation_Validate(t *testing.T) {
	t.Run("Valid", func(t *testing.T) {
		m := validMutation()
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CompactsValuesInPlace", func(t *testing.T) {
		m := validMutation()
		data := m.Data
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := string(data["title"]); got != `{"a":[1,2]}` {
			t.Fatalf("title = %q, want compact JSON", got)
		}
	})
	t.Run("DeleteWithoutData", func(t *testing.T) {
		m := validMutation()
		m.Op, m.Data = syncproto.OpDelete, nil
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	tests := []struct {
		name   string
		change func(*syncproto.Mutation)
		want   error
	}{
		{"PutWithoutFields", func(m *syncproto.Mutation) { m.Data = nil }, syncproto.ErrBadMessage},
		{"PutWithEmptyFields", func(m *syncproto.Mutation) { m.Data = map[string]json.RawMessage{} }, syncproto.ErrBadMessage},
		{"DeleteWithData", func(m *syncproto.Mutation) { m.Op = syncproto.OpDelete }, syncproto.ErrBadMessage},
		{"NoOp", func(m *syncproto.Mutation) { m.Op = "" }, syncproto.ErrBadMessage},
		{"NonJSONValue", func(m *syncproto.Mutation) { m.Data["n"] = json.RawMessage(`{oops}`) }, syncproto.ErrBadMessage},
		{"TwoJSONValues", func(m *syncproto.Mutation) { m.Data["n"] = json.RawMessage(`1 2`) }, syncproto.ErrBadMessage},
		{"EmptyValue", func(m *syncproto.Mutation) { m.Data["n"] = json.RawMessage(``) }, syncproto.ErrBadMessage},
		{"BlankValue", func(m *syncproto.Mutation) { m.Data["n"] = json.RawMessage(`   `) }, syncproto.ErrBadMessage},
		{"ZeroStamp", func(m *syncproto.Mutation) { m.Stamp = syncproto.Stamp{} }, syncproto.ErrBadMessage},
		{"BadID", func(m *syncproto.Mutation) { m.ID = strings.ToUpper(mutID) }, syncproto.ErrBadMessage},
		{"BadField", func(m *syncproto.Mutation) { m.Data["Bad"] = json.RawMessage(`1`) }, syncproto.ErrBadMessage},
		{"BadBaseField", func(m *syncproto.Mutation) { m.Base = map[string]syncproto.Stamp{"9": {}} }, syncproto.ErrBadMessage},
		{"TooLarge", func(m *syncproto.Mutation) {
			m.Data["n"] = json.RawMessage(`"` + strings.Repeat("x", syncproto.MaxMutationBytes) + `"`)
		}, syncproto.ErrTooLarge},
		{"TooLargeAcrossFields", func(m *syncproto.Mutation) {
			half := `"` + strings.Repeat("x", syncproto.MaxMutationBytes/2) + `"`
			m.Data["n"], m.Data["title"] = json.RawMessage(half), json.RawMessage(half)
		}, syncproto.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validMutation()
			tt.change(&m)
			err := m.Validate()
			if !errors.Is(err, tt.want) {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("SizeAtLimit", func(t *testing.T) {
		m := validMutation()
		// len("n") + len(value) == MaxMutationBytes exactly.
		m.Data = map[string]json.RawMessage{"n": json.RawMessage(`"` + strings.Repeat("x", syncproto.MaxMutationBytes-3) + `"`)}
		if err := m.Validate(); err != nil {
			t.Fatalf("mutation of exactly MaxMutationBytes: %v", err)
		}
	})
}

func TestErrors(t *testing.T) {
	t.Run("IsMatchesByCode", func(t *testing.T) {
		err := syncproto.Errorf(syncproto.CodeForbidden, "write to %s", "x")
		if !errors.Is(err, syncproto.ErrForbidden) {
			t.Fatal("Errorf(CodeForbidden) does not match ErrForbidden")
		}
		if errors.Is(err, syncproto.ErrBadMessage) {
			t.Fatal("Errorf(CodeForbidden) matches ErrBadMessage")
		}
		wrapped := fmt.Errorf("apply batch 3: %w", err)
		if !errors.Is(wrapped, syncproto.ErrForbidden) {
			t.Fatal("wrapped error does not match ErrForbidden")
		}
		// A non-sentinel *Error is not a target: only codes are compared.
		if errors.Is(syncproto.ErrForbidden, err) {
			t.Fatal("sentinel matched a detailed error as target")
		}
	})
	t.Run("EverySentinel", func(t *testing.T) {
		sentinels := map[syncproto.Code]error{
			syncproto.CodeBadMessage: syncproto.ErrBadMessage, syncproto.CodeProtocolUnsupported: syncproto.ErrProtocolUnsupported,
			syncproto.CodeUnauthorized: syncproto.ErrUnauthorized, syncproto.CodeRevoked: syncproto.ErrRevoked,
			syncproto.CodeForbidden: syncproto.ErrForbidden, syncproto.CodeInvalid: syncproto.ErrInvalid,
			syncproto.CodeTooLarge: syncproto.ErrTooLarge, syncproto.CodeSlowConsumer: syncproto.ErrSlowConsumer,
			syncproto.CodeRateLimited: syncproto.ErrRateLimited, syncproto.CodeShuttingDown: syncproto.ErrShuttingDown,
			syncproto.CodeInternal: syncproto.ErrInternal, syncproto.CodeUnreachable: syncproto.ErrUnreachable,
			syncproto.CodeScopesChanged: syncproto.ErrScopesChanged,
		}
		if len(syncproto.Codes()) != len(sentinels) {
			t.Fatalf("Codes() has %d codes, test knows %d", len(syncproto.Codes()), len(sentinels))
		}
		for _, code := range syncproto.Codes() {
			sentinel, ok := sentinels[code]
			if !ok {
				t.Fatalf("no sentinel for %q", code)
			}
			err := fmt.Errorf("op: %w", &syncproto.Error{Code: code, Message: "m", Err: errors.New("cause")})
			if !errors.Is(err, sentinel) {
				t.Errorf("%q: errors.Is(err, sentinel) = false", code)
			}
			if got := syncproto.ErrorCode(err); got != code {
				t.Errorf("ErrorCode = %q, want %q", got, code)
			}
			if code.MessageID() != "error."+string(code) {
				t.Errorf("MessageID = %q", code.MessageID())
			}
		}
	})
	t.Run("ErrorCode", func(t *testing.T) {
		if got := syncproto.ErrorCode(nil); got != "" {
			t.Fatalf("ErrorCode(nil) = %q", got)
		}
		if got := syncproto.ErrorCode(errors.New("boom")); got != syncproto.CodeInternal {
			t.Fatalf("ErrorCode(plain) = %q, want internal", got)
		}
		if got := syncproto.ErrorCode(syncproto.ErrRevoked); got != syncproto.CodeRevoked {
			t.Fatalf("ErrorCode(ErrRevoked) = %q", got)
		}
	})
	t.Run("UnwrapKeepsCause", func(t *testing.T) {
		cause := errors.New("disk full")
		err := &syncproto.Error{Code: syncproto.CodeInternal, Message: "commit", Err: cause}
		if !errors.Is(err, cause) {
			t.Fatal("errors.Is does not reach the cause")
		}
		if got := err.Error(); got != "internal: commit: disk full" {
			t.Fatalf("Error() = %q", got)
		}
	})
	t.Run("DecodeErrorWrapsJSONError", func(t *testing.T) {
		_, err := syncproto.Decode([]byte(`{"type":1}`))
		var typeErr *json.UnmarshalTypeError
		if !errors.Is(err, syncproto.ErrBadMessage) || !errors.As(err, &typeErr) {
			t.Fatalf("Decode error %v: want ErrBadMessage wrapping the JSON error", err)
		}
	})
}

// Record identifiers are 1 to MaxIDLen letters, digits and "-._:", every
// other byte refused wherever it stands.
func TestValidID(t *testing.T) {
	for _, id := range []string{"a", "Z", "0", "p-1", "2026.11_x:y", "0b7c2b1e-5d7f-4a53-9e8e-0d1c9f1a2b3c",
		strings.Repeat("x", syncproto.MaxIDLen)} {
		if !syncproto.ValidID(id) {
			t.Errorf("ValidID(%q) = false, want true", id)
		}
	}
	for _, id := range []string{"", strings.Repeat("x", syncproto.MaxIDLen+1)} {
		if syncproto.ValidID(id) {
			t.Errorf("ValidID(%q) = true, want false", id)
		}
	}
	for c := range 256 {
		allowed := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._:", byte(c)) >= 0
		for _, id := range []string{string([]byte{byte(c)}), "ab" + string([]byte{byte(c)}), string([]byte{byte(c)}) + "ab"} {
			if got := syncproto.ValidID(id); got != allowed {
				t.Errorf("ValidID(%q) = %v, want %v", id, got, allowed)
			}
		}
	}
}
