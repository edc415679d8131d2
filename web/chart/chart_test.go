package chart_test

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/portaldist/portal/web/chart"
)

// element is a parsed SVG element: its name, attributes, direct text and
// children.
type element struct {
	Name     string
	Attr     map[string]string
	Text     string
	Children []*element
}

// parseXML parses the SVG as XML (so it is well-formed: it can be served as
// image/svg+xml on its own) into a tree.
func parseXML(t *testing.T, svg string) *element {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(svg))
	dec.Strict = true
	var stack []*element
	var root *element
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &element{Name: tok.Name.Local, Attr: map[string]string{}}
			for _, a := range tok.Attr {
				e.Attr[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, e)
			} else {
				root = e
			}
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(tok)
			}
		}
	}
	if root == nil {
		t.Fatal("no root element")
	}
	return root
}

func (e *element) all(name string) []*element {
	var out []*element
	var walk func(*element)
	walk = func(e *element) {
		if e.Name == name {
			out = append(out, e)
		}
		for _, c := range e.Children {
			walk(c)
		}
	}
	walk(e)
	return out
}

func (e *element) class(c string) []*element {
	var out []*element
	var walk func(*element)
	walk = func(e *element) {
		if e.Attr["class"] == c {
			out = append(out, e)
		}
		for _, ch := range e.Children {
			walk(ch)
		}
	}
	walk(e)
	return out
}

func days(n int, set map[int]uint64) []uint64 {
	v := make([]uint64, n)
	for i, x := range set {
		v[i] = x
	}
	return v
}

var first = time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)

func TestDailyStructure(t *testing.T) {
	hostile := `<script>alert("x")</script>&amp;'` + "\x00\x1b\xff"
	cases := []struct {
		name    string
		chart   chart.Daily
		lines   []string // legend order: series drawn, largest first
		circles int      // points with a value
		empty   bool
		yMax    string
	}{
		{
			name: "two releases",
			chart: chart.Daily{ID: "dl", Title: "Downloads of app", First: first, Days: 30, Series: []chart.Series{
				{Name: "1.0.0", Values: days(30, map[int]uint64{0: 1, 29: 2})},
				{Name: "2.0.0", Values: days(30, map[int]uint64{3: 7, 4: 3})},
			}},
			lines: []string{"2.0.0 (10)", "1.0.0 (3)"}, circles: 4, yMax: "8",
		},
		{
			name:  "no series",
			chart: chart.Daily{ID: "dl", Title: "Downloads", First: first, Days: 30},
			empty: true, yMax: "4",
		},
		{
			name: "only zeros",
			chart: chart.Daily{ID: "dl", Title: "Downloads", First: first, Days: 30, Series: []chart.Series{
				{Name: "1.0.0", Values: days(30, nil)},
			}},
			empty: true, yMax: "4",
		},
		{
			name: "hostile name and title",
			chart: chart.Daily{ID: `x" onload="alert(1)`, Title: hostile, First: first, Days: 30, Series: []chart.Series{
				{Name: hostile, Values: days(30, map[int]uint64{2: 1})},
			}},
			circles: 1, yMax: "1",
		},
		{
			name: "more series than drawn",
			chart: func() chart.Daily {
				d := chart.Daily{ID: "many", Title: "Downloads", First: first, Days: 30}
				for i := range chart.MaxSeries + 3 {
					d.Series = append(d.Series, chart.Series{Name: fmt.Sprintf("1.%d.0", i), Values: days(30, map[int]uint64{i: uint64(100 - i)})})
				}
				return d
			}(),
			// 1.0.0 .. 1.6.0 on their own, 1.7.0 .. 1.10.0 summed.
			lines: []string{"1.0.0 (100)", "1.1.0 (99)", "1.2.0 (98)", "1.3.0 (97)", "1.4.0 (96)", "1.5.0 (95)", "1.6.0 (94)",
				chart.Other + " (93+92+91+90)"},
			circles: 7 + 4, yMax: "100",
		},
		{
			name: "one day, values beyond Days ignored",
			chart: chart.Daily{ID: "one", Title: "Today", First: first, Days: 1, Series: []chart.Series{
				{Name: "1.0.0", Values: []uint64{12, 99, 99}},
			}},
			lines: []string{"1.0.0 (12)"}, circles: 1, yMax: "15",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := string(c.chart.SVG())
			if out != string(c.chart.SVG()) {
				t.Fatal("two renderings differ")
			}
			root := parseXML(t, out)
			if root.Name != "svg" || root.Attr["role"] != "img" {
				t.Fatalf("root %s role %q", root.Name, root.Attr["role"])
			}
			// aria-labelledby names the title and the description.
			ids := strings.Fields(root.Attr["aria-labelledby"])
			titles, descs := root.Children[0], root.Children[1]
			if len(ids) != 2 || titles.Name != "title" || descs.Name != "desc" || titles.Attr["id"] != ids[0] || descs.Attr["id"] != ids[1] {
				t.Fatalf("aria-labelledby %q does not name the first <title> and <desc>: %+v %+v", ids, titles, descs)
			}
			if strings.ContainsAny(ids[0], `" <>`) || strings.Contains(out, "onload=") {
				t.Fatalf("id not cleaned: %q", ids[0])
			}
			if strings.TrimSpace(descs.Text) == "" {
				t.Fatal("empty <desc>")
			}
			if c.chart.Title != hostile && titles.Text != c.chart.Title {
				t.Fatalf("title %q, want %q", titles.Text, c.chart.Title)
			}
			// Axes, y ticks from 0 to a round top, x labels of the first and the last day.
			if n := len(root.class("axis")); n != 2 {
				t.Fatalf("%d axes", n)
			}
			ys := root.class("y-axis")[0].all("text")
			if ys[0].Text != "0" || ys[len(ys)-1].Text != c.yMax {
				t.Fatalf("y labels %q .. %q, want 0 .. %s", ys[0].Text, ys[len(ys)-1].Text, c.yMax)
			}
			xs := root.class("x-axis")[0].all("text")
			last := first.AddDate(0, 0, max(c.chart.Days, 1)-1).Format("Jan 2")
			if xs[0].Text != first.Format("Jan 2") || xs[len(xs)-2].Text != last || xs[len(xs)-1].Text != "day (UTC)" {
				t.Fatalf("x labels %v", texts(xs))
			}
			// One line, one legend entry per series drawn.
			series := root.class("series")
			legend := root.class("legend")[0].all("text")
			if c.empty {
				if len(series) != 0 || len(legend) != 0 || len(root.class("empty")) != 1 {
					t.Fatalf("empty chart: %d series, %d legend entries, %d notes", len(series), len(legend), len(root.class("empty")))
				}
				return
			}
			if len(root.class("empty")) != 0 {
				t.Fatal("a chart with data says it has none")
			}
			if len(series) != len(legend) || len(root.all("polyline")) != len(series) {
				t.Fatalf("%d series, %d legend entries, %d polylines", len(series), len(legend), len(root.all("polyline")))
			}
			if c.lines != nil {
				got := texts(legend)
				for i := range c.lines {
					if want := c.lines[i]; strings.Contains(want, "+") {
						// Other: check the sum.
						var a, b, cc, d int
						fmt.Sscanf(want[strings.Index(want, "(")+1:], "%d+%d+%d+%d", &a, &b, &cc, &d)
						want = fmt.Sprintf("%s (%d)", chart.Other, a+b+cc+d)
						c.lines[i] = want
					}
				}
				if strings.Join(got, "|") != strings.Join(c.lines, "|") {
					t.Fatalf("legend %q, want %q", got, c.lines)
				}
			}
			for _, p := range root.all("polyline") {
				if n := len(strings.Fields(p.Attr["points"])); n != max(c.chart.Days, 1) {
					t.Fatalf("polyline of %d points, want %d", n, c.chart.Days)
				}
			}
			if n := len(root.all("circle")); n != c.circles {
				t.Fatalf("%d points, want %d", n, c.circles)
			}
			for _, e := range root.all("circle") {
				if len(e.Children) != 1 || e.Children[0].Name != "title" || !strings.Contains(e.Children[0].Text, " on 2026-") {
					t.Fatalf("point without its <title>: %+v", e)
				}
			}
		})
	}
}

func texts(es []*element) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Text
	}
	return out
}

// TestHostileNamesEscaped: a release name or title carrying markup stays
// text when the SVG is inlined in an HTML page: the HTML parser finds no
// element or attribute the chart did not write, and the text reads back
// as given (control characters replaced).
func TestHostileNamesEscaped(t *testing.T) {
	names := []string{
		`<script>alert(1)</script>`,
		`"><img src=x onerror=alert(1)>`,
		`</title><script>alert(1)</script>`,
		`]]><![CDATA[<svg onload=alert(1)>`,
		`&lt;already escaped&gt; & more`,
		"bell\x07 nul\x00 bad\xff utf-8",
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			d := chart.Daily{ID: "h", Title: name, Desc: name, First: first, Days: 30, Series: []chart.Series{{Name: name, Values: days(30, map[int]uint64{1: 2})}}}
			svg := string(d.SVG())
			page := "<!doctype html><html><body>" + svg + "</body></html>"
			doc, err := html.Parse(strings.NewReader(page))
			if err != nil {
				t.Fatal(err)
			}
			allowed := map[string]bool{"html": true, "head": true, "body": true, "svg": true, "title": true, "desc": true, "g": true,
				"line": true, "text": true, "polyline": true, "circle": true}
			var found []string
			var walk func(*html.Node)
			walk = func(n *html.Node) {
				if n.Type == html.ElementNode {
					if !allowed[n.Data] {
						t.Errorf("element <%s> in the page", n.Data)
					}
					for _, a := range n.Attr {
						if strings.HasPrefix(a.Key, "on") || a.Key == "src" {
							t.Errorf("attribute %s on <%s>", a.Key, n.Data)
						}
					}
					if n.Data == "title" && n.Parent.Data == "svg" && n.FirstChild != nil {
						found = append(found, n.FirstChild.Data)
					}
				}
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c)
				}
			}
			walk(doc)
			want := strings.Map(func(r rune) rune {
				if r < 0x20 && r != '\t' && r != '\n' {
					return '\uFFFD'
				}
				return r
			}, strings.ToValidUTF8(name, "\uFFFD"))
			if len(found) != 1 || found[0] != want {
				t.Fatalf("title text %q, want %q", found, want)
			}
			// And the SVG alone is well-formed XML.
			parseXML(t, svg)
		})
	}
}
