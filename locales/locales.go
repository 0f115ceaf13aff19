// Package locales holds every message a person can read, in every language
// Ponte supports, as go-i18n message files embedded in the binaries.
//
// The bundle is loaded once and is safe for concurrent use; a Localizer is
// made per user or request.
package locales

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed *.json
var files embed.FS

// Default is the language used when none of a person's languages is supported.
var Default = language.English

var (
	loadOnce sync.Once
	bundle   *i18n.Bundle
	loadErr  error
)

// Bundle returns the message bundle with every embedded locale. It panics
// only if an embedded file is malformed, which the package tests rule out.
func Bundle() *i18n.Bundle {
	loadOnce.Do(func() { bundle, loadErr = load() })
	if loadErr != nil {
		panic(loadErr)
	}
	return bundle
}

func load() (*i18n.Bundle, error) {
	b := i18n.NewBundle(Default)
	b.RegisterUnmarshalFunc("json", json.Unmarshal)
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list locales: %w", err)
	}
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read locale %s: %w", name, err)
		}
		if _, err := b.ParseMessageFileBytes(data, name); err != nil {
			return nil, fmt.Errorf("parse locale %s: %w", name, err)
		}
	}
	return b, nil
}

// Tags returns the supported languages, sorted.
func Tags() []language.Tag {
	tags := slices.Clone(Bundle().LanguageTags())
	slices.SortFunc(tags, func(a, b language.Tag) int { return strings.Compare(a.String(), b.String()) })
	return tags
}

// Files returns the embedded message files by language tag, for tests and
// tools that check the catalogue.
func Files() fs.FS { return files }

// Lang returns the tag of a locale file name such as "ar.json".
func Lang(file string) string { return strings.TrimSuffix(path.Base(file), ".json") }

// Localizer returns a localizer for a person's languages in preference order
// (BCP 47 tags or Accept-Language values), falling back to English.
func Localizer(langs ...string) *i18n.Localizer {
	return i18n.NewLocalizer(Bundle(), append(slices.Clone(langs), Default.String())...)
}

// Matching returns the supported language that best matches a person's
// languages (BCP 47 tags or Accept-Language values), or "" if none does.
func Matching(langs ...string) string {
	m := language.NewMatcher(Tags())
	for _, l := range langs {
		if l == "" {
			continue
		}
		tags, _, err := language.ParseAcceptLanguage(l)
		if err != nil || len(tags) == 0 {
			continue
		}
		if tag, _, conf := m.Match(tags...); conf > language.No {
			base, _ := tag.Base()
			return base.String()
		}
	}
	return ""
}

// Text returns message id localised, with data for its template. A message
// that cannot be rendered is logged and falls back to English, then to the id:
// a person always reads something.
func Text(l *i18n.Localizer, id string, data map[string]any) string {
	return render(l, &i18n.LocalizeConfig{MessageID: id, TemplateData: data})
}

// Plural returns message id localised in the plural form for count; data may
// add template fields beside Count.
func Plural(l *i18n.Localizer, id string, count int, data map[string]any) string {
	td := map[string]any{"Count": count}
	for k, v := range data {
		td[k] = v
	}
	return render(l, &i18n.LocalizeConfig{MessageID: id, PluralCount: count, TemplateData: td})
}

func render(l *i18n.Localizer, cfg *i18n.LocalizeConfig) string {
	s, err := l.Localize(cfg)
	if err == nil {
		return s
	}
	slog.Warn("localize", "id", cfg.MessageID, "err", err)
	if s != "" {
		return s
	}
	if s, err = Localizer().Localize(cfg); err == nil {
		return s
	}
	return cfg.MessageID
}

// Direction returns "rtl" or "ltr": the text direction of the language a
// person reads, as its locale file declares it.
func Direction(l *i18n.Localizer) string {
	if Text(l, "locale.direction", nil) == "rtl" {
		return "rtl"
	}
	return "ltr"
}
