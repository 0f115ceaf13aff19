// Package sampledata makes realistic records for benchmarks and demos.
package sampledata

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Realistic intake forms: names in many scripts, random identifiers, so the
// records are no easier to compress than real ones.
var (
	givenNames = []string{"Amina", "Mohamed", "Oksana", "Fatima", "Abebe", "Li Na", "Ahmad", "Mariam", "Ivan", "Samira",
		"Yusuf", "Daniela", "Kofi", "Aisha", "Olena", "Rahim", "Tsegay", "Nadia", "Bilal", "Irina",
		"أمينة", "محمد", "Оксана", "Олена", "ফাতেমা", "রহিম", "ተስፋይ", "李娜", "علی", "زینب", "Arben", "Gurpreet"}
	familyNames = []string{"Haddad", "Kovalenko", "Rahman", "Tesfaye", "Wang", "Ahmadi", "Diallo", "Popescu", "Hussain",
		"Shevchenko", "Mensah", "Kaur", "Hoxha", "Nguyen", "Benali", "Okafor", "Ibrahim", "Karimi", "Singh", "Mazur",
		"حداد", "Коваленко", "রহমান", "ተስፋዬ", "王", "احمدی", "Shehu", "Yilmaz", "Barry", "Castillo"}
	nationalities = []string{"MA", "UA", "BD", "ER", "CN", "AF", "SN", "RO", "PK", "NG", "AL", "IN", "EG", "TN", "GH"}
	languages     = []string{"ar", "fr", "uk", "ru", "bn", "ti", "zh", "fa", "ps", "ur", "pa", "sq", "en", "wo"}
	needs         = []string{"housing", "work", "language", "legal", "health", "school"}
	notes         = []string{"prefers morning appointments", "needs an interpreter", "referred by the parish",
		"documents pending", "attends the A2 course", "looking for work in catering", "two children at school",
		"", "", ""}
)

// Person returns a realistic, valid intake form (records.Person) of about
// 290 bytes of JSON, consent recorded; its record id, a random UUID, comes
// on top.
func Person(r *rand.Rand, sites []string) map[string]any {
	given, family := givenNames[r.IntN(len(givenNames))], familyNames[r.IntN(len(familyNames))]
	n := 1 + r.IntN(3)
	langs := make([]string, 0, n)
	for len(langs) < n {
		if l := languages[r.IntN(len(languages))]; !slices.Contains(langs, l) {
			langs = append(langs, l)
		}
	}
	p := map[string]any{
		"site_id":     sites[r.IntN(len(sites))],
		"given_name":  given,
		"family_name": family,
		"birth_date":  fmt.Sprintf("%04d-%02d-%02d", 1950+r.IntN(58), 1+r.IntN(12), 1+r.IntN(28)),
		"nationality": nationalities[r.IntN(len(nationalities))],
		"languages":   langs,
		"needs":       []string{needs[r.IntN(len(needs))]},
		// Consent is recorded before the sensitive fields above may be.
		"consent_given":    true,
		"consent_date":     fmt.Sprintf("2026-%02d-%02d", 1+r.IntN(10), 1+r.IntN(28)),
		"consent_language": langs[0],
	}
	if r.IntN(2) == 0 {
		p["phone"] = fmt.Sprintf("+39%010d", r.Int64N(1e10))
	}
	if note := notes[r.IntN(len(notes))]; note != "" {
		p["notes"] = note
	}
	return p
}

// PersonData returns a Person as a put carries it: each field's JSON.
func PersonData(r *rand.Rand, sites []string) map[string]json.RawMessage {
	data := map[string]json.RawMessage{}
	for k, v := range Person(r, sites) {
		data[k], _ = json.Marshal(v) // strings, bools and string slices
	}
	return data
}

// Appointment returns a realistic, valid appointment (records.Appointment)
// of a person with a mediator at a site, in the days after day.
func Appointment(r *rand.Rand, sites []string, personID string, day time.Time) map[string]any {
	start := day.AddDate(0, 0, r.IntN(14)).Add(time.Duration(8*60+15*r.IntN(36)) * time.Minute)
	return map[string]any{
		"person_id":             personID,
		"mediator":              mediators[r.IntN(len(mediators))],
		"site_id":               sites[r.IntN(len(sites))],
		"start":                 start.Format(time.RFC3339),
		"end":                   start.Add(45 * time.Minute).Format(time.RFC3339),
		"kind":                  kinds[r.IntN(len(kinds))],
		"status":                "scheduled",
		"interpreting_language": languages[r.IntN(len(languages))],
	}
}

var (
	mediators = []string{"giulia", "ahmed", "oksana", "samuel", "fatou", "marco"}
	kinds     = []string{"orientation", "mediation", "legal", "job", "school", "health", "housing"}
)
