package web

import (
	"bytes"
	"html"
	"html/template"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/util"
)

// md renders release notes. It is goldmark without its unsafe option:
// links and images with dangerous URLs (javascript:, ...) lose them, and
// raw HTML, which goldmark would drop, is shown as text by rawAsText.
var md = goldmark.New(goldmark.WithRendererOptions(
	renderer.WithNodeRenderers(util.Prioritized(rawAsText{}, 100)),
))

// rawAsText renders raw HTML (inline and blocks) escaped, as the text a
// vendor typed, so no markup in release notes reaches the page.
type rawAsText struct{}

func (rawAsText) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindHTMLBlock, func(w util.BufWriter, src []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		b := n.(*ast.HTMLBlock)
		if entering {
			w.WriteString("<pre class=\"raw\">")
			for i := 0; i < b.Lines().Len(); i++ {
				line := b.Lines().At(i)
				w.WriteString(html.EscapeString(string(line.Value(src))))
			}
			if b.HasClosure() {
				w.WriteString(html.EscapeString(string(b.ClosureLine.Value(src))))
			}
			w.WriteString("</pre>\n")
		}
		return ast.WalkContinue, nil
	})
	reg.Register(ast.KindRawHTML, func(w util.BufWriter, src []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			r := n.(*ast.RawHTML)
			for i := 0; i < r.Segments.Len(); i++ {
				seg := r.Segments.At(i)
				w.WriteString(html.EscapeString(string(seg.Value(src))))
			}
		}
		return ast.WalkSkipChildren, nil
	})
}

// Markdown renders release notes as safe HTML (see md). Notes that fail to
// render are shown as escaped text.
func Markdown(s string) template.HTML {
	var buf bytes.Buffer
	if err := md.Convert([]byte(s), &buf); err != nil {
		return template.HTML("<pre>" + html.EscapeString(s) + "</pre>")
	}
	return template.HTML(buf.String())
}
