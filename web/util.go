package web

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"
)

func readFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

// logoType names an image's content type from its bytes (and, for SVG,
// its name), or "" for anything else.
func logoType(name string, b []byte) string {
	switch ct := http.DetectContentType(b); ct {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return ct
	}
	if strings.EqualFold(path.Ext(name), ".svg") && bytes.Contains(b[:min(len(b), 4096)], []byte("<svg")) {
		return "image/svg+xml"
	}
	return ""
}

func encodeFlash(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decodeFlash(v string) string {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) > 300 || !utf8.Valid(b) {
		return ""
	}
	return string(b)
}
