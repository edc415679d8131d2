// Package chart draws the admin console's charts as SVG on the server: no
// chart library and no script reach the browser, so the charts work under
// the pages' strict Content-Security-Policy (they use presentation
// attributes, never style attributes) and with JavaScript off.
//
// Every text that comes from data (release names, titles) is escaped for
// HTML and XML alike, so the SVG may be inlined in a page or served on its
// own. The output is deterministic: the same input gives the same bytes.
package chart

import (
	"cmp"
	"fmt"
	"html"
	"html/template"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Series is one line of a chart: a name (a release version) and one value
// per day.
type Series struct {
	Name   string
	Values []uint64
}

// Daily is a chart of values per day, one line per series.
type Daily struct {
	// ID prefixes the ids of the chart's elements (its title and
	// description, which aria-labelledby names); keep it unique in the
	// page. Characters other than ASCII letters, digits, "-" and "_" are
	// replaced.
	ID string
	// Title is the chart's accessible name and Desc its longer
	// description; both are drawn as the SVG's <title> and <desc>.
	Title, Desc string
	// First is the first day (UTC); Days the number of days drawn. Values
	// beyond Days are ignored, missing ones count as 0.
	First time.Time
	Days  int
	// Series are drawn largest total first. Beyond MaxSeries, the
	// smallest are summed into one line named Other.
	Series []Series
	// Unit names what is counted, for point labels ("downloads").
	Unit string
}

// MaxSeries is the most lines a chart draws, Other included.
const MaxSeries = 8

// Other names the line that sums the series beyond MaxSeries.
const Other = "other releases"

// Geometry of the drawing, in SVG user units; the SVG scales to its box
// (width 100%), so it reads on a phone too.
const (
	width      = 720
	plotTop    = 20
	plotLeft   = 56
	plotRight  = 16
	plotHeight = 220
	axisBelow  = 44 // x labels under the plot
	legendRow  = 22
	legendCols = 3
)

// palette: colours distinguishable by most readers, each paired with a
// dash pattern so that lines differ without colour too.
var palette = []struct{ colour, dash string }{
	{"#1f77b4", ""}, {"#d62728", "6 3"}, {"#2ca02c", "2 3"}, {"#9467bd", "8 3 2 3"},
	{"#ff7f0e", "1 2"}, {"#17becf", "10 4"}, {"#8c564b", "4 2 1 2"}, {"#7f7f7f", "3 6"},
}

// SVG renders the chart. It never fails: no days or no data draw the axes
// with a note saying there is nothing to show.
func (d Daily) SVG() template.HTML {
	days := max(d.Days, 1)
	series := d.lines(days)
	var top uint64
	for _, s := range series {
		for _, v := range s.Values {
			top = max(top, v)
		}
	}
	step, ticks := yTicks(top)
	legendRows := (len(series) + legendCols - 1) / legendCols
	height := plotTop + plotHeight + axisBelow + legendRows*legendRow + 8
	plotW := float64(width - plotLeft - plotRight)
	x := func(i int) float64 {
		if days == 1 {
			return plotLeft + plotW/2
		}
		return plotLeft + plotW*float64(i)/float64(days-1)
	}
	y := func(v uint64) float64 {
		return plotTop + plotHeight - plotHeight*float64(v)/float64(step*uint64(ticks))
	}

	id := cleanID(d.ID)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="100%%" viewBox="0 0 %d %d" aria-labelledby="%s-title %s-desc">`, width, height, id, id)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title>`, id, esc(d.Title))
	fmt.Fprintf(&b, `<desc id="%s-desc">%s</desc>`, id, esc(d.describe(days, series)))

	// Grid and y axis labels.
	b.WriteString(`<g class="y-axis" font-size="12" fill="#444" text-anchor="end">`)
	for i := 0; i <= ticks; i++ {
		v := step * uint64(i)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%s" y2="%s" stroke="#ddd"/>`, plotLeft, width-plotRight, f(y(v)), f(y(v)))
		fmt.Fprintf(&b, `<text x="%d" y="%s">%d</text>`, plotLeft-6, f(y(v)+4), v)
	}
	b.WriteString(`</g>`)
	// Axes.
	fmt.Fprintf(&b, `<line class="axis" x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`, plotLeft, plotLeft, plotTop, plotTop+plotHeight)
	fmt.Fprintf(&b, `<line class="axis" x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`, plotLeft, width-plotRight, plotTop+plotHeight, plotTop+plotHeight)
	// x axis labels: about six dates, always the first and the last day.
	b.WriteString(`<g class="x-axis" font-size="12" fill="#444" text-anchor="middle">`)
	every := max(1, (days+5)/6)
	for i := 0; i < days; i++ {
		if i%every != 0 && i != days-1 {
			continue
		}
		if i != days-1 && days-1-i < every/2 {
			continue // too close to the last label
		}
		day := d.First.UTC().AddDate(0, 0, i)
		fmt.Fprintf(&b, `<line x1="%s" x2="%s" y1="%d" y2="%d" stroke="#333"/>`, f(x(i)), f(x(i)), plotTop+plotHeight, plotTop+plotHeight+4)
		fmt.Fprintf(&b, `<text x="%s" y="%d">%s</text>`, f(x(i)), plotTop+plotHeight+18, day.Format("Jan 2"))
	}
	fmt.Fprintf(&b, `<text x="%s" y="%d">day (UTC)</text>`, f(plotLeft+plotW/2), plotTop+plotHeight+36)
	b.WriteString(`</g>`)

	if len(series) == 0 {
		fmt.Fprintf(&b, `<text class="empty" x="%s" y="%d" font-size="14" fill="#444" text-anchor="middle">No %s in these %d days</text>`,
			f(plotLeft+plotW/2), plotTop+plotHeight/2, esc(d.unit()), days)
	}
	for i, s := range series {
		p := palette[i%len(palette)]
		dash := ""
		if p.dash != "" {
			dash = ` stroke-dasharray="` + p.dash + `"`
		}
		fmt.Fprintf(&b, `<g class="series" fill="%s"><title>%s</title>`, p.colour, esc(s.Name))
		b.WriteString(`<polyline fill="none" stroke-width="2" stroke="` + p.colour + `"` + dash + ` points="`)
		for j, v := range s.Values {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(f(x(j)) + "," + f(y(v)))
		}
		b.WriteString(`"/>`)
		for j, v := range s.Values {
			if v == 0 {
				continue
			}
			day := d.First.UTC().AddDate(0, 0, j).Format(time.DateOnly)
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3"><title>%s on %s: %d %s</title></circle>`,
				f(x(j)), f(y(v)), esc(s.Name), day, v, esc(d.unit()))
		}
		b.WriteString(`</g>`)
	}
	// Legend under the axis.
	b.WriteString(`<g class="legend" font-size="12" fill="#222">`)
	colW := (width - plotLeft) / legendCols
	for i, s := range series {
		p := palette[i%len(palette)]
		lx := plotLeft + (i%legendCols)*colW
		ly := plotTop + plotHeight + axisBelow + (i/legendCols)*legendRow + 8
		dash := ""
		if p.dash != "" {
			dash = ` stroke-dasharray="` + p.dash + `"`
		}
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke-width="3" stroke="%s"%s/>`, lx, lx+24, ly, ly, p.colour, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s (%d)</text>`, lx+30, ly+4, esc(shorten(s.Name, 28)), sum(s.Values))
	}
	b.WriteString(`</g></svg>`)
	return template.HTML(b.String()) // every data text above went through esc
}

// lines returns the series to draw: each cut or padded to days values,
// those without any value left out, largest total first (then by name),
// the ones beyond MaxSeries summed into Other.
func (d Daily) lines(days int) []Series {
	var out []Series
	for _, s := range d.Series {
		v := make([]uint64, days)
		copy(v, s.Values)
		if sum(v) > 0 {
			out = append(out, Series{Name: s.Name, Values: v})
		}
	}
	slices.SortStableFunc(out, func(a, b Series) int {
		if c := cmp.Compare(sum(b.Values), sum(a.Values)); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if len(out) > MaxSeries {
		rest := Series{Name: Other, Values: make([]uint64, days)}
		for _, s := range out[MaxSeries-1:] {
			for i, v := range s.Values {
				rest.Values[i] += v
			}
		}
		out = append(out[:MaxSeries-1], rest)
	}
	return out
}

// describe says in words what the chart shows, for screen readers.
func (d Daily) describe(days int, series []Series) string {
	if d.Desc != "" {
		return d.Desc
	}
	first := d.First.UTC()
	last := first.AddDate(0, 0, days-1)
	if len(series) == 0 {
		return fmt.Sprintf("No %s from %s to %s.", d.unit(), first.Format(time.DateOnly), last.Format(time.DateOnly))
	}
	parts := make([]string, len(series))
	for i, s := range series {
		parts[i] = fmt.Sprintf("%s %d", s.Name, sum(s.Values))
	}
	return fmt.Sprintf("%s per day from %s to %s, one line per release; totals: %s.",
		capitalize(d.unit()), first.Format(time.DateOnly), last.Format(time.DateOnly), strings.Join(parts, ", "))
}

func (d Daily) unit() string {
	if d.Unit == "" {
		return "downloads"
	}
	return d.Unit
}

// yTicks returns a round step (1, 2 or 5 times a power of ten) and the
// number of steps, at most 5, that reach at least top.
func yTicks(top uint64) (step uint64, n int) {
	if top == 0 {
		return 1, 4
	}
	for pow := uint64(1); ; pow *= 10 {
		for _, m := range []uint64{1, 2, 5} {
			step = m * pow
			if n := (top + step - 1) / step; n <= 5 {
				return step, int(max(n, 1))
			}
		}
		if pow > 1e17 {
			return top, 1
		}
	}
}

func sum(v []uint64) uint64 {
	var n uint64
	for _, x := range v {
		n += x
	}
	return n
}

// esc escapes s for HTML and XML text and quoted attributes.
// Control characters (not allowed in XML) and invalid UTF-8 become U+FFFD.
func esc(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' || r == 0x7f {
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return html.EscapeString(s)
}

func f(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func cleanID(s string) string {
	if s == "" {
		return "chart"
	}
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '-'
	}, s)
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
