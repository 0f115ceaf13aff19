package web

import (
	"fmt"
	"html/template"
	"strings"
)

// bar is one bar of a chart; Max is the scale (0: the largest value).
type bar struct {
	Label string
	Value float64
	Max   float64
	Text  string
}

// barChart renders horizontal bars as inline SVG: no script, no external
// library, readable without colour (each bar carries its figure).
func barChart(bars []bar, lang string) template.HTML {
	if len(bars) == 0 {
		return ""
	}
	scale := 0.0
	for _, b := range bars {
		scale = max(scale, b.Value, b.Max)
	}
	if scale == 0 {
		scale = 1
	}
	const rowH, labelW, barW = 28, 260, 380
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg role="img" viewBox="0 0 %d %d" width="100%%" style="max-width:%dpx" lang="%s">`,
		labelW+barW+60, rowH*len(bars)+4, labelW+barW+60, template.HTMLEscapeString(lang))
	for i, b := range bars {
		y := i*rowH + 2
		w := int(b.Value / scale * barW)
		fmt.Fprintf(&sb, `<text x="0" y="%d" dominant-baseline="middle">%s</text>`, y+rowH/2, template.HTMLEscapeString(b.Label))
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%d" height="%d" fill="#2f6db5" rx="3"><title>%s: %s</title></rect>`,
			labelW, y+4, w, rowH-8, template.HTMLEscapeString(b.Label), template.HTMLEscapeString(b.Text))
		fmt.Fprintf(&sb, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`, labelW+w+6, y+rowH/2, template.HTMLEscapeString(b.Text))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) // every piece above is escaped
}
