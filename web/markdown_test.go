package web

import (
	"strings"
	"testing"
)

// TestMarkdown: release notes render as Markdown, raw HTML shows as text,
// and dangerous link targets are dropped.
func TestMarkdown(t *testing.T) {
	for _, tc := range []struct {
		name, in    string
		want, never []string
	}{
		{"markdown", "# Title\n\n- *one*\n- `two`\n\n[docs](https://example.com/docs)", []string{"<h1>Title</h1>", "<em>one</em>", "<code>two</code>", `<a href="https://example.com/docs">docs</a>`}, nil},
		{"inline html", "a <b onclick=\"x()\">bold</b> word", []string{"&lt;b onclick=&#34;x()&#34;&gt;bold&lt;/b&gt;"}, []string{"<b", "onclick=\""}},
		{"html block", "<script>alert(1)</script>\n\nafter", []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "<p>after</p>"}, []string{"<script"}},
		{"html comment", "<!-- hidden -->", []string{"&lt;!-- hidden --&gt;"}, []string{"<!--"}},
		{"iframe", "<iframe src=\"https://evil.example\"></iframe>", []string{"&lt;iframe"}, []string{"<iframe"}},
		{"javascript link", "[click](javascript:alert(1))", []string{"click"}, []string{"javascript:"}},
		{"data link", "[x](data:text/html;base64,PHNjcmlwdD4=)", nil, []string{"data:text/html"}},
		{"image onerror", "![a](x\" onerror=\"alert(1))", nil, []string{"onerror=\""}},
		{"autolink", "<https://example.com>", []string{`<a href="https://example.com">https://example.com</a>`}, nil},
		{"code keeps its text", "`<b>`", []string{"<code>&lt;b&gt;</code>"}, nil},
		{"NUL and controls", "a\x00b\x1b[31m", nil, []string{"\x00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(Markdown(tc.in))
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q renders as %q, without %q", tc.in, got, w)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(got, n) {
					t.Errorf("%q renders as %q, with %q", tc.in, got, n)
				}
			}
		})
	}
}

// BenchmarkMarkdown renders a typical release note.
func BenchmarkMarkdown(b *testing.B) {
	notes := strings.Repeat("## Fixed\n\n- a crash when *exporting* to `PDF` <b>now</b>\n- [issue 12](https://example.com/12)\n\n", 20)
	for b.Loop() {
		Markdown(notes)
	}
}
