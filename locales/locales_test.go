package locales_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"
	"text/template"
	"text/template/parse"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"

	"github.com/ponte-project/ponte/locales"
)

// source is the catalogue every other locale translates.
const source = "en"

// rtl holds the languages written right to left; every other locale is ltr.
var rtl = map[string]bool{"ar": true, "fa": true, "ps": true, "ur": true}

// sampleTime stands in for {{.Time}} when messages are rendered.
const sampleTime = "14:05"

// sampleData stands in for every template field a message may use.
func sampleData(count any) map[string]any {
	return map[string]any{"Count": count, "Time": sampleTime, "Live": 2, "URL": "wss://example.org/sync",
		"Field": "birth_date", "Param": "2026-11-23", "Command": "frobnicate", "SyncURL": "ws://127.0.0.1:8080/sync",
		"DB": "ponte.db", "Device": "dev-1", "User": "giulia", "Name": "Centro Nord", "Password": "ponte-demo-2026"}
}

// pluralCounts are the counts every plural message is localised with. The
// integers up to 200 reach every integer form of the languages we ship
// (Arabic's "many" stops at 99, its "other" starts at 100; Ukrainian's forms
// repeat every 100), 1000000 reaches the Romance "many", and the decimals
// reach forms only fractions select (Ukrainian "other", Urdu "other" for 1.0).
var pluralCounts = func() []any {
	counts := make([]any, 0, 210)
	for n := range 201 {
		counts = append(counts, n)
	}
	return append(counts, 1000, 1000000, "0.5", "1.0", "1.5", "2.5", "100.5")
}()

// pluralForms are go-i18n's names for the CLDR plural categories.
var pluralForms = []string{"zero", "one", "two", "few", "many", "other"}

// localeFile is one parsed message file.
type localeFile struct {
	lang     string
	name     string
	messages map[string]*i18n.Message
}

// parseLocale parses one embedded file the way the bundle does.
func parseLocale(name string) (localeFile, error) {
	data, err := fs.ReadFile(locales.Files(), name)
	if err != nil {
		return localeFile{}, fmt.Errorf("read %s: %w", name, err)
	}
	mf, err := i18n.ParseMessageFileBytes(data, name, map[string]i18n.UnmarshalFunc{"json": json.Unmarshal})
	if err != nil {
		return localeFile{}, fmt.Errorf("parse %s: %w", name, err)
	}
	lf := localeFile{lang: locales.Lang(name), name: name, messages: make(map[string]*i18n.Message, len(mf.Messages))}
	for _, m := range mf.Messages {
		lf.messages[m.ID] = m
	}
	return lf, nil
}

// duplicateKeys returns the dotted paths of object keys repeated in data.
func duplicateKeys(data []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var dups []string
	var walk func(prefix string) error
	walk = func(prefix string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				tok, err := dec.Token()
				if err != nil {
					return err
				}
				key := prefix + tok.(string)
				if seen[key] {
					dups = append(dups, key)
				}
				seen[key] = true
				if err := walk(key + "."); err != nil {
					return err
				}
			}
		case json.Delim('['):
			for dec.More() {
				if err := walk(prefix); err != nil {
					return err
				}
			}
		default:
			return nil
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	return dups, walk("")
}

// mustLoadCatalogue parses every embedded locale, keyed by language.
func mustLoadCatalogue(tb testing.TB) map[string]localeFile {
	tb.Helper()
	names, err := fs.Glob(locales.Files(), "*.json")
	if err != nil {
		tb.Fatal(err)
	}
	cat := make(map[string]localeFile, len(names))
	for _, name := range names {
		lf, err := parseLocale(name)
		if err != nil {
			tb.Fatal(err)
		}
		cat[lf.lang] = lf
	}
	if _, ok := cat[source]; !ok {
		tb.Fatalf("no %s.json among %v", source, names)
	}
	return cat
}

// forms returns a message's non-empty plural forms by CLDR name.
func forms(m *i18n.Message) map[string]string {
	all := map[string]string{"zero": m.Zero, "one": m.One, "two": m.Two, "few": m.Few, "many": m.Many, "other": m.Other}
	maps.DeleteFunc(all, func(_, src string) bool { return src == "" })
	return all
}

// isPlural reports whether a message has forms besides "other".
func isPlural(m *i18n.Message) bool { return len(forms(m)) > 1 || m.Other == "" }

// formsUsed returns the plural forms go-i18n selects for lang over
// pluralCounts, each with the counts that select it. It localises a probe
// message whose every form is its own name, so it needs no access to
// go-i18n's internal rule table.
func formsUsed(tb testing.TB, lang string) map[string][]any {
	tb.Helper()
	b := i18n.NewBundle(language.English)
	probe := &i18n.Message{ID: "probe", Zero: "zero", One: "one", Two: "two", Few: "few", Many: "many", Other: "other"}
	if err := b.AddMessages(language.Make(lang), probe); err != nil {
		tb.Fatalf("%s: no plural rule: %v", lang, err)
	}
	l := i18n.NewLocalizer(b, lang)
	used := map[string][]any{}
	for _, n := range pluralCounts {
		form, err := l.Localize(&i18n.LocalizeConfig{MessageID: probe.ID, PluralCount: n})
		if err != nil {
			tb.Fatalf("%s: probe count %v: %v", lang, n, err)
		}
		used[form] = append(used[form], n)
	}
	return used
}

// templateFields returns the fields a message template reads, such as ".Count".
func templateFields(src string) ([]string, error) {
	t, err := template.New("").Parse(src)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	var walk func(parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(c)
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			set["."+strings.Join(n.Ident, ".")] = true
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		}
	}
	if t.Tree != nil {
		walk(t.Tree.Root)
	}
	return slices.Sorted(maps.Keys(set)), nil
}

func TestCatalogue_EveryLocaleParses(t *testing.T) {
	names, err := fs.Glob(locales.Files(), "*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		t.Run(locales.Lang(name), func(t *testing.T) {
			if _, err := language.Parse(locales.Lang(name)); err != nil {
				t.Errorf("%s: file name is not a language tag: %v", name, err)
			}
			if _, err := parseLocale(name); err != nil {
				t.Error(err)
			}
			// JSON decoding keeps the last of two equal keys: one translation
			// would vanish without a word.
			data, err := fs.ReadFile(locales.Files(), name)
			if err != nil {
				t.Fatal(err)
			}
			if dups, err := duplicateKeys(data); err != nil {
				t.Errorf("decode %s: %v", name, err)
			} else if len(dups) > 0 {
				t.Errorf("%s: duplicate keys %q", name, dups)
			}
		})
	}
}

func TestCatalogue_EveryLocaleHasEveryMessage(t *testing.T) {
	cat := mustLoadCatalogue(t)
	want := cat[source].messages
	for _, lang := range slices.Sorted(maps.Keys(cat)) {
		lf := cat[lang]
		t.Run(lang, func(t *testing.T) {
			var missing, extra []string
			for id := range want {
				if _, ok := lf.messages[id]; !ok {
					missing = append(missing, id)
				}
			}
			for id := range lf.messages {
				if _, ok := want[id]; !ok {
					extra = append(extra, id)
				}
			}
			if len(missing) > 0 {
				slices.Sort(missing)
				t.Errorf("%s: missing %d message(s) of %s.json: %q", lf.name, len(missing), source, missing)
			}
			if len(extra) > 0 {
				slices.Sort(extra)
				t.Errorf("%s: %d message(s) not in %s.json: %q", lf.name, len(extra), source, extra)
			}
		})
	}
}

func TestCatalogue_PluralMessagesHaveEveryCLDRForm(t *testing.T) {
	cat := mustLoadCatalogue(t)
	src := cat[source].messages
	for _, lang := range slices.Sorted(maps.Keys(cat)) {
		lf := cat[lang]
		t.Run(lang, func(t *testing.T) {
			used := formsUsed(t, lang)
			l := locales.Localizer(lang)
			wantTag := language.Make(lang)
			for _, id := range slices.Sorted(maps.Keys(src)) {
				m, ok := lf.messages[id]
				if !ok {
					continue // reported by TestCatalogue_EveryLocaleHasEveryMessage
				}
				have := forms(m)
				if !isPlural(src[id]) {
					if len(have) != 1 || m.Other == "" {
						t.Errorf("%s: %q is a plain message in %s.json but has forms %q", lf.name, id, source, slices.Sorted(maps.Keys(have)))
					}
					continue
				}
				for _, form := range pluralForms {
					_, has := have[form]
					counts, needed := used[form]
					switch {
					case needed && !has:
						t.Errorf("%s: %q lacks the %q form, needed for counts such as %v", lf.name, id, form, counts[:min(len(counts), 5)])
					case has && !needed:
						t.Errorf("%s: %q has a %q form that %s never uses (go-i18n ignores it)", lf.name, id, form, lang)
					}
				}
				var failed []any
				var firstErr error
				for _, n := range pluralCounts {
					s, tag, err := l.LocalizeWithTag(&i18n.LocalizeConfig{
						MessageID:    id,
						PluralCount:  n,
						TemplateData: sampleData(n),
					})
					if err == nil && tag != wantTag {
						err = fmt.Errorf("localised in %s, not %s", tag, wantTag)
					}
					if err == nil && (s == "" || strings.Contains(s, "<no value>")) {
						err = fmt.Errorf("rendered %q", s)
					}
					if err != nil {
						failed = append(failed, n)
						if firstErr == nil {
							firstErr = err
						}
					}
				}
				if len(failed) > 0 {
					t.Errorf("%s: localize %q fails for %d count(s) such as %v: %v", lf.name, id, len(failed), failed[:min(len(failed), 5)], firstErr)
				}
			}
		})
	}
}

func TestCatalogue_MessagesKeepTemplateFields(t *testing.T) {
	cat := mustLoadCatalogue(t)
	src := cat[source].messages
	want := make(map[string][]string, len(src))
	for id, m := range src {
		set := map[string]bool{}
		for form, s := range forms(m) {
			fields, err := templateFields(s)
			if err != nil {
				t.Fatalf("%s.json: form %q of %q: %v", source, form, id, err)
			}
			for _, f := range fields {
				set[f] = true
			}
		}
		want[id] = slices.Sorted(maps.Keys(set))
	}
	data := sampleData(3)
	for _, lang := range slices.Sorted(maps.Keys(cat)) {
		lf := cat[lang]
		t.Run(lang, func(t *testing.T) {
			l := locales.Localizer(lang)
			wantTag := language.Make(lang)
			for _, id := range slices.Sorted(maps.Keys(src)) {
				m, ok := lf.messages[id]
				if !ok {
					continue // reported by TestCatalogue_EveryLocaleHasEveryMessage
				}
				for _, form := range pluralForms {
					s, ok := forms(m)[form]
					if !ok {
						continue
					}
					got, err := templateFields(s)
					if err != nil {
						t.Errorf("%s: form %q of %q is not a valid template: %v", lf.name, form, id, err)
						continue
					}
					if !slices.Equal(got, want[id]) {
						t.Errorf("%s: form %q of %q uses fields %q, want %q as in %s.json", lf.name, form, id, got, want[id], source)
					}
				}
				cfg := &i18n.LocalizeConfig{MessageID: id, TemplateData: data}
				if isPlural(src[id]) {
					cfg.PluralCount = data["Count"]
				}
				s, tag, err := l.LocalizeWithTag(cfg)
				switch {
				case err != nil:
					t.Errorf("%s: render %q: %v", lf.name, id, err)
				case tag != wantTag:
					t.Errorf("%s: %q rendered in %s, not %s", lf.name, id, tag, wantTag)
				case s == "" || strings.Contains(s, "<no value>"):
					t.Errorf("%s: %q rendered as %q", lf.name, id, s)
				}
			}
		})
	}
}

func TestCatalogue_DirectionMatchesScript(t *testing.T) {
	cat := mustLoadCatalogue(t)
	for lang := range rtl {
		if _, ok := cat[lang]; !ok {
			t.Errorf("right-to-left locale %s.json is missing", lang)
		}
	}
	for _, lang := range slices.Sorted(maps.Keys(cat)) {
		lf := cat[lang]
		t.Run(lang, func(t *testing.T) {
			want := "ltr"
			if rtl[lang] {
				want = "rtl"
			}
			if m, ok := lf.messages["locale.direction"]; !ok {
				t.Errorf("%s: no locale.direction", lf.name)
			} else if m.Other != want {
				t.Errorf("%s: locale.direction = %q, want %q", lf.name, m.Other, want)
			}
			if got := locales.Direction(locales.Localizer(lang)); got != want {
				t.Errorf("Direction(Localizer(%q)) = %q, want %q", lang, got, want)
			}
		})
	}
	if got := locales.Direction(locales.Localizer("ar")); got != "rtl" {
		t.Errorf(`Direction(Localizer("ar")) = %q, want "rtl"`, got)
	}
}

func TestCatalogue_LocaleNameIsTranslated(t *testing.T) {
	cat := mustLoadCatalogue(t)
	english := cat[source].messages["locale.name"].Other
	for _, lang := range slices.Sorted(maps.Keys(cat)) {
		if lang == source {
			continue
		}
		t.Run(lang, func(t *testing.T) {
			m, ok := cat[lang].messages["locale.name"]
			if !ok {
				t.Skip("reported by TestCatalogue_EveryLocaleHasEveryMessage")
			}
			if strings.TrimSpace(m.Other) == "" || m.Other == english {
				t.Errorf("%s.json: locale.name = %q, want the language's own name", lang, m.Other)
			}
		})
	}
}

func TestTags_EmbedsEveryLocale(t *testing.T) {
	const atLeast = 14
	tags := locales.Tags()
	if len(tags) < atLeast {
		t.Errorf("Tags() = %v: %d locales, want at least %d", tags, len(tags), atLeast)
	}
	names, err := fs.Glob(locales.Files(), "*.json")
	if err != nil {
		t.Fatal(err)
	}
	files := make([]string, 0, len(names))
	for _, name := range names {
		files = append(files, language.Make(locales.Lang(name)).String())
	}
	got := make([]string, 0, len(tags))
	for _, tag := range tags {
		got = append(got, tag.String())
	}
	if slices.Sort(files); !slices.Equal(got, files) {
		t.Errorf("Tags() = %q, want one per file: %q", got, files)
	}
}

func TestText_FallsBack(t *testing.T) {
	cat := mustLoadCatalogue(t)
	t.Run("unknown language reads English", func(t *testing.T) {
		want := cat[source].messages["state.offline"].Other
		if got := locales.Text(locales.Localizer("xx"), "state.offline", nil); got != want {
			t.Errorf("Text(xx, state.offline) = %q, want %q", got, want)
		}
	})
	t.Run("unknown id reads the id", func(t *testing.T) {
		const id = "no.such.message"
		for _, lang := range []string{"it", "ar", "xx"} {
			if got := locales.Text(locales.Localizer(lang), id, nil); got != id {
				t.Errorf("Text(%s, %s) = %q, want the id", lang, id, got)
			}
		}
	})
	t.Run("plural in an unknown language reads English", func(t *testing.T) {
		got := locales.Plural(locales.Localizer("xx"), "status.pending", 2, nil)
		want := strings.ReplaceAll(cat[source].messages["status.pending"].Other, "{{.Count}}", "2")
		if got != want {
			t.Errorf("Plural(xx, status.pending, 2) = %q, want %q", got, want)
		}
	})
}
