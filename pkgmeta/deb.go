package pkgmeta

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/portaldist/portal/releases"
)

// A .deb is an ar archive: "debian-binary" ("2.0\n"), then
// "control.tar[.gz|.xz|.zst]" holding ./control, then "data.tar.*". The
// control archive comes before the data, so the first debPrefix bytes hold
// it for any reasonable package.
const (
	arMagic     = "!<arch>\n"
	arHeaderLen = 60
	debPrefix   = 8 << 20
)

var debFormat = &Format{
	Name: "deb", Ext: ".deb", Prefix: debPrefix,
	Extract: extractDeb, Upstream: DebUpstream, Arch: DebArchToPortal,
}

// Debian architectures the portal has names for, and back.
var debArches = map[string]string{"amd64": "amd64", "arm64": "arm64", "i386": "386", "armhf": "arm", "armel": "arm", "all": "any"}

// DebArchToPortal maps a Debian architecture to the portal's arch
// (releases.ParseArch): amd64, arm64, i386 -> 386, armhf and armel -> arm,
// all -> any.
func DebArchToPortal(a string) (string, bool) {
	p, ok := debArches[a]
	return p, ok
}

// DebArches lists the Debian architectures a package of portal arch arch
// installs on ("any" is every one the portal names; "arm" is armhf and
// armel).
func DebArches(arch string) []string {
	switch arch {
	case "amd64", "arm64":
		return []string{arch}
	case "386":
		return []string{"i386"}
	case "arm":
		return []string{"armhf", "armel"}
	}
	return []string{"amd64", "arm64", "i386", "armhf", "armel"}
}

// DebUpstream returns the upstream part of a Debian version, in a form
// releases.ParseVersion reads: without the epoch ("1:"), without the
// Debian revision (after the last "-"), and with "~" (which sorts before
// the release in Debian) as "-", SemVer's pre-release separator:
// "1:2.0.0~rc1-3" is "2.0.0-rc1".
func DebUpstream(v string) string {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		v = v[:i]
	}
	return strings.ReplaceAll(v, "~", "-")
}

var (
	debNameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	debVersionRE = regexp.MustCompile(`^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*$`)
	fieldNameRE  = regexp.MustCompile(`^[!-9;-~][!-9;-~]*$`)
)

// Fields the repository computes for each package; a control file that has
// them (it should not) loses them.
var computedFields = map[string]bool{"filename": true, "size": true, "md5sum": true, "sha1": true, "sha256": true, "sha512": true, "status": true}

// Fields whose continuation lines are lines of their own (deb-control(5));
// every other field is folded into one line.
var multilineFields = map[string]bool{"description": true, "conffiles": true, "files": true, "checksums-sha1": true,
	"checksums-sha256": true, "package-list": true, "changes": true}

func extractDeb(r io.ReaderAt, size int64) (releases.Package, error) {
	var magic [len(arMagic)]byte
	if size < int64(len(arMagic)) || readFull(r, magic[:], 0, "the ar header") != nil || string(magic[:]) != arMagic {
		return releases.Package{}, unprocessable("not a .deb package: no ar archive header")
	}
	off := int64(len(arMagic))
	first := true
	for off < size {
		var h [arHeaderLen]byte
		if err := readFull(r, h[:], off, "an ar member header"); err != nil {
			return releases.Package{}, err
		}
		if h[58] != '`' || h[59] != '\n' {
			return releases.Package{}, unprocessable("not a .deb package: malformed ar member header at byte %d", off)
		}
		name := strings.TrimSuffix(strings.TrimRight(string(h[:16]), " "), "/")
		n, err := strconv.ParseInt(strings.TrimRight(string(h[48:58]), " "), 10, 64)
		if err != nil || n < 0 || n > size-off-arHeaderLen {
			return releases.Package{}, unprocessable("not a .deb package: ar member %q has a bad size", name)
		}
		off += arHeaderLen
		switch {
		case first:
			if name != "debian-binary" || n < 4 || n > 64 {
				return releases.Package{}, unprocessable("not a .deb package: the first member is %q, not debian-binary", name)
			}
			b := make([]byte, n)
			if err := readFull(r, b, off, "debian-binary"); err != nil {
				return releases.Package{}, err
			}
			if !bytes.HasPrefix(b, []byte("2.")) {
				return releases.Package{}, unprocessable("unsupported .deb format version %q", strings.TrimSpace(string(b)))
			}
			first = false
		case strings.HasPrefix(name, "control.tar"):
			if n > MaxControl {
				return releases.Package{}, unprocessable("the control archive is %d bytes, more than the %d the portal reads", n, MaxControl)
			}
			b := make([]byte, n)
			if err := readFull(r, b, off, "the control archive"); err != nil {
				return releases.Package{}, err
			}
			control, err := readControlTar(name, b)
			if err != nil {
				return releases.Package{}, err
			}
			return parseDebControl(control)
		case strings.HasPrefix(name, "data.tar"):
			return releases.Package{}, unprocessable("not a .deb package: data archive before the control archive")
		}
		off += n + n%2 // members are padded to an even offset
	}
	return releases.Package{}, unprocessable("not a .deb package: no control archive")
}

// readControlTar returns the ./control file of a control archive.
func readControlTar(name string, b []byte) ([]byte, error) {
	var rd io.Reader = bytes.NewReader(b)
	switch strings.TrimPrefix(name, "control.tar") {
	case "":
	case ".gz":
		z, err := gzip.NewReader(rd)
		if err != nil {
			return nil, unprocessable("the control archive is not valid gzip: %v", err)
		}
		rd = z
	case ".xz":
		if err := checkXZ(b); err != nil {
			return nil, err
		}
		z, err := xz.ReaderConfig{SingleStream: true}.NewReader(rd)
		if err != nil {
			return nil, unprocessable("the control archive is not valid xz: %v", err)
		}
		rd = z
	case ".zst":
		z, err := zstd.NewReader(rd, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecoderMaxWindow(8<<20))
		if err != nil {
			return nil, unprocessable("the control archive is not valid zstd: %v", err)
		}
		defer z.Close()
		rd = z
	default:
		return nil, unprocessable("unsupported control archive %q (use gzip, xz or zstd)", name)
	}
	// Decompression is bounded: a small archive that inflates without end
	// is cut at MaxControl.
	tr := tar.NewReader(io.LimitReader(rd, MaxControl))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, unprocessable("the control archive has no control file")
		}
		if err != nil {
			return nil, unprocessable("the control archive cannot be read: %v", err)
		}
		if h.Name != "./control" && h.Name != "control" {
			continue
		}
		if h.Typeflag != tar.TypeReg || h.Size > MaxStored {
			return nil, unprocessable("the control file is not a regular file of at most %d bytes", MaxStored)
		}
		b, err := io.ReadAll(io.LimitReader(tr, MaxStored+1))
		if err != nil {
			return nil, unprocessable("the control file cannot be read: %v", err)
		}
		return b, nil
	}
}

// maxXZDict bounds the LZMA2 dictionary an xz control archive may declare:
// the decoder allocates it in full before reading a byte (a 100-byte file
// declaring 4 GiB would make it allocate 4 GiB). xz -9 uses 64 MiB; dpkg's
// default (-6) 8 MiB.
const maxXZDict = 64 << 20

// checkXZ refuses an xz file the decoder must not be given: anything but
// one stream of one block (what xz and dpkg-deb write for a control
// archive), or a dictionary above maxXZDict. It reads the stream's footer,
// index and block header (the xz file format, sections 2.1-3.1), nothing
// else; the decoder checks the rest, including every CRC.
func checkXZ(b []byte) error {
	bad := func(why string) error {
		return unprocessable("the control archive is not an xz file the portal reads: %s", why)
	}
	for len(b) >= 4 && len(b)%4 == 0 && string(b[len(b)-4:]) == "\x00\x00\x00\x00" {
		b = b[:len(b)-4] // stream padding
	}
	const headerLen, footerLen = 12, 12
	if len(b) < headerLen+footerLen || !xz.ValidHeader(b[:headerLen]) || string(b[len(b)-2:]) != "YZ" {
		return bad("no xz stream header or footer")
	}
	footer := b[len(b)-footerLen:]
	indexLen := (int64(binary.LittleEndian.Uint32(footer[4:8])) + 1) * 4
	indexAt := int64(len(b)-footerLen) - indexLen
	if indexAt < headerLen {
		return bad("the index does not fit")
	}
	index := b[indexAt : len(b)-footerLen]
	if index[0] != 0 {
		return bad("malformed index")
	}
	records, n := binary.Uvarint(index[1:])
	if n <= 0 || records != 1 {
		return bad("not exactly one block")
	}
	unpadded, m := binary.Uvarint(index[1+n:])
	if m <= 0 || unpadded > uint64(len(b)) {
		return bad("malformed index")
	}
	// One stream: header, the one block (padded to 4 bytes), index, footer
	// make up the whole file.
	if int64(headerLen)+int64((unpadded+3)&^3) != indexAt {
		return bad("more than one stream, or data between the block and the index")
	}
	h := b[headerLen:]
	size := (int(h[0]) + 1) * 4
	if h[0] == 0 || size > len(h) {
		return bad("malformed block header")
	}
	flags, p := h[1], 2
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} { // compressed, uncompressed size
		if present {
			_, k := binary.Uvarint(h[p:size])
			if k <= 0 {
				return bad("malformed block header")
			}
			p += k
		}
	}
	for range int(flags&3) + 1 {
		id, k := binary.Uvarint(h[p:size])
		if k <= 0 {
			return bad("malformed block header")
		}
		p += k
		plen, k := binary.Uvarint(h[p:size])
		if k <= 0 || plen > uint64(size-p-k) {
			return bad("malformed block header")
		}
		p += k
		if id == 0x21 { // LZMA2
			if plen != 1 {
				return bad("malformed LZMA2 filter")
			}
			dict, err := lzma.DecodeDictCap(h[p])
			if err != nil || dict > maxXZDict {
				return bad(fmt.Sprintf("its dictionary is larger than %d MiB", maxXZDict>>20))
			}
			return nil
		}
		p += int(plen)
	}
	return bad("no LZMA2 filter")
}

// Field is one field of a control paragraph; Value keeps continuation
// lines (each after "\n", starting with a space or tab).
type Field struct{ Name, Value string }

// ParseControl reads one control paragraph (RFC 822 style, deb-control(5)):
// "Name: value" lines, continuation lines starting with a space or tab,
// comments ("#") and blank lines ignored. Field names are case-insensitive
// and must not repeat.
func ParseControl(text string) ([]Field, error) {
	var out []Field
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line = strings.TrimRight(line, " \t")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case line[0] == ' ' || line[0] == '\t':
			if len(out) == 0 {
				return nil, unprocessable("control file: continuation line before any field")
			}
			out[len(out)-1].Value += "\n" + line
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !fieldNameRE.MatchString(name) {
			return nil, unprocessable("control file: malformed line %q", truncate(line, 60))
		}
		if seen[strings.ToLower(name)] {
			return nil, unprocessable("control file: field %s appears twice", name)
		}
		seen[strings.ToLower(name)] = true
		out = append(out, Field{Name: name, Value: strings.TrimSpace(value)})
	}
	return out, nil
}

// Get returns the value of a field (case-insensitively) and whether it is
// present.
func Get(fields []Field, name string) (string, bool) {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

func parseDebControl(b []byte) (releases.Package, error) {
	if !isText(b) {
		return releases.Package{}, unprocessable("the control file is not UTF-8 text")
	}
	fields, err := ParseControl(string(b))
	if err != nil {
		return releases.Package{}, err
	}
	p := releases.Package{Format: "deb"}
	p.Name, _ = Get(fields, "Package")
	p.Version, _ = Get(fields, "Version")
	p.Arch, _ = Get(fields, "Architecture")
	switch {
	case !debNameRE.MatchString(p.Name):
		return p, unprocessable("the control file's Package %q is not a valid package name", truncate(p.Name, 60))
	case !debVersionRE.MatchString(p.Version):
		return p, unprocessable("the control file's Version %q is not a valid Debian version", truncate(p.Version, 60))
	}
	if _, ok := DebArchToPortal(p.Arch); !ok {
		return p, unprocessable("the control file's Architecture %q is not one the portal serves (amd64, arm64, i386, armhf, armel, all)", truncate(p.Arch, 60))
	}
	if _, ok := Get(fields, "Description"); !ok {
		return p, unprocessable("the control file has no Description")
	}
	var sb strings.Builder
	for _, f := range fields {
		if computedFields[strings.ToLower(f.Name)] {
			continue
		}
		v := f.Value
		if !multilineFields[strings.ToLower(f.Name)] && strings.Contains(v, "\n") {
			// Folded fields (Depends, ...) are one logical line, as
			// dpkg-deb and dpkg-scanpackages print them.
			v = strings.Join(strings.Fields(v), " ")
		}
		sb.WriteString(f.Name)
		sb.WriteString(": ")
		sb.WriteString(v)
		sb.WriteByte('\n')
	}
	p.Control = sb.String()
	if len(p.Control) > MaxStored {
		return p, unprocessable("the control file is larger than %d bytes", MaxStored)
	}
	return p, nil
}

func isText(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0 && strings.ToValidUTF8(string(b), "\uFFFD") == string(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
