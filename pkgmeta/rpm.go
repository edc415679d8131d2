package pkgmeta

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/portaldist/portal/releases"
)

// RPM is what YUM/DNF repository metadata needs from an .rpm file: the
// fields of its main header (and the archive size, which newer rpm
// versions keep only in the signature header), read by ParseRPM.
//
// Dependencies and files are kept as the header has them (raw flags,
// "E:V-R" version strings, every file); the createrepo rules that filter
// and shape them for primary.xml live with the repodata writer.
type RPM struct {
	Name    string `json:"name"`
	Epoch   uint32 `json:"epoch,omitempty"`
	Version string `json:"version"`
	Release string `json:"release"`
	// Arch is the header's arch ("x86_64", "aarch64", "noarch", ...), or
	// "src" for a source package.
	Arch        string `json:"arch"`
	Summary     string `json:"summary,omitempty"`
	Description string `json:"description,omitempty"`
	URL         string `json:"url,omitempty"`
	License     string `json:"license,omitempty"`
	Vendor      string `json:"vendor,omitempty"`
	Group       string `json:"group,omitempty"`
	BuildHost   string `json:"buildhost,omitempty"`
	SourceRPM   string `json:"sourcerpm,omitempty"`
	Packager    string `json:"packager,omitempty"`
	// BuildTime is in Unix seconds.
	BuildTime     int64 `json:"buildtime,omitempty"`
	InstalledSize int64 `json:"installed_size"`
	ArchiveSize   int64 `json:"archive_size"`
	// HeaderStart and HeaderEnd are the byte range of the main header in
	// the file (primary.xml's rpm:header-range): from its magic to the end
	// of its data store.
	HeaderStart int64 `json:"header_start"`
	HeaderEnd   int64 `json:"header_end"`

	Provides    []RPMDep `json:"provides,omitempty"`
	Requires    []RPMDep `json:"requires,omitempty"`
	Conflicts   []RPMDep `json:"conflicts,omitempty"`
	Obsoletes   []RPMDep `json:"obsoletes,omitempty"`
	Recommends  []RPMDep `json:"recommends,omitempty"`
	Suggests    []RPMDep `json:"suggests,omitempty"`
	Supplements []RPMDep `json:"supplements,omitempty"`
	Enhances    []RPMDep `json:"enhances,omitempty"`

	Files []RPMFile `json:"files,omitempty"`
	// FilesTrimmed says Files holds only the files primary.xml lists: the
	// whole list did not fit the catalog (see DecodeRPM).
	FilesTrimmed bool `json:"files_trimmed,omitempty"`
	// Changelogs are the newest MaxRPMChangelogs entries, newest first, as
	// the header orders them.
	Changelogs []RPMChangelog `json:"changelogs,omitempty"`
}

// RPMDep is one dependency as the header stores it.
type RPMDep struct {
	Name string `json:"name"`
	// Flags are rpm's RPMSENSE bits: the comparison in the low four bits
	// (2 LT, 4 GT, 8 EQ), the rest says when it applies (pre, post, ...).
	Flags uint32 `json:"flags,omitempty"`
	// Version is "[epoch:]version[-release]", empty without a comparison.
	Version string `json:"version,omitempty"`
}

// RPMFile is one path the package installs.
type RPMFile struct {
	Path string `json:"path"`
	// Dir is a directory; Ghost a file the package owns but does not ship
	// (%ghost).
	Dir   bool `json:"dir,omitempty"`
	Ghost bool `json:"ghost,omitempty"`
}

// RPMChangelog is one %changelog entry.
type RPMChangelog struct {
	Author string `json:"author"`
	Time   int64  `json:"time"` // Unix seconds
	Text   string `json:"text"`
}

// Bounds for ParseRPM. An .rpm beyond them is refused as invalid rather
// than read: they are far above what real packages have (a large kernel
// package has some ten thousand files and a header of a few MiB).
const (
	// MaxRPMHeaderEntries bounds the index entries of one header.
	MaxRPMHeaderEntries = 1 << 16
	// MaxRPMHeaderStore bounds the data store of the main header.
	MaxRPMHeaderStore = 64 << 20
	// MaxRPMSignatureStore bounds the data store of the signature header.
	MaxRPMSignatureStore = 1 << 20
	// MaxRPMFiles bounds the files of one package.
	MaxRPMFiles = 1 << 18
	// MaxRPMDeps bounds the dependencies of one kind.
	MaxRPMDeps = 1 << 14
	// MaxRPMChangelogs is how many changelog entries are kept (the newest),
	// the number createrepo_c puts in other.xml by default.
	MaxRPMChangelogs = 10
)

// Header tags (rpmtag.h). The signature header has its own numbers for the
// few tags read from it.
const (
	tagName          = 1000
	tagVersion       = 1001
	tagRelease       = 1002
	tagEpoch         = 1003
	tagSummary       = 1004
	tagDescription   = 1005
	tagBuildTime     = 1006
	tagBuildHost     = 1007
	tagSize          = 1009
	tagVendor        = 1011
	tagLicense       = 1014
	tagPackager      = 1015
	tagGroup         = 1016
	tagURL           = 1020
	tagArch          = 1022
	tagFileModes     = 1030
	tagFileFlags     = 1037
	tagSourceRPM     = 1044
	tagArchiveSize   = 1046
	tagProvideName   = 1047
	tagRequireFlags  = 1048
	tagRequireName   = 1049
	tagRequireVer    = 1050
	tagConflictFlags = 1053
	tagConflictName  = 1054
	tagConflictVer   = 1055
	tagChangelogTime = 1080
	tagChangelogName = 1081
	tagChangelogText = 1082
	tagObsoleteName  = 1090
	tagSourcePackage = 1106
	tagProvideFlags  = 1112
	tagProvideVer    = 1113
	tagObsoleteFlags = 1114
	tagObsoleteVer   = 1115
	tagDirIndexes    = 1116
	tagBaseNames     = 1117
	tagDirNames      = 1118
	tagLongArchive   = 271
	tagLongSize      = 5009
	tagRecommendName = 5046
	tagRecommendVer  = 5047
	tagRecommendFlag = 5048
	tagSuggestName   = 5049
	tagSuggestVer    = 5050
	tagSuggestFlags  = 5051
	tagSupplementNam = 5052
	tagSupplementVer = 5053
	tagSupplementFlg = 5054
	tagEnhanceName   = 5055
	tagEnhanceVer    = 5056
	tagEnhanceFlags  = 5057

	sigTagSize        = 1000
	sigTagPayloadSize = 1007
	sigTagLongArchive = 271
)

// Header entry types.
const (
	typeChar        = 1
	typeInt8        = 2
	typeInt16       = 3
	typeInt32       = 4
	typeInt64       = 5
	typeString      = 6
	typeBin         = 7
	typeStringArray = 8
	typeI18NString  = 9
)

const (
	leadSize      = 96
	fileFlagGhost = 1 << 6
	modeTypeMask  = 0o170000
	modeDir       = 0o040000
)

var (
	leadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01}
)

// ErrNotRPM is wrapped by ParseRPM's errors: the bytes are not a readable
// .rpm (bad magic, truncated, or beyond a bound). Its messages name what
// is wrong and are safe to show to the publisher.
var ErrNotRPM = errors.New("not a valid .rpm")

func rpmErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrNotRPM, fmt.Sprintf(format, a...))
}

// ParseRPM reads an .rpm's lead, signature header and main header from r
// and returns their metadata. It reads no further than the end of the main
// header (the payload is not needed), so r may be the start of a file of
// any size.
//
// It trusts nothing in the file: counts, offsets and sizes are checked
// against the header's own store and the Max* bounds before use, so a
// hostile file costs at most about MaxRPMHeaderStore bytes of memory and
// fails with an error wrapping ErrNotRPM. Errors from r other than an
// early EOF are returned as they are.
func ParseRPM(r io.Reader) (*RPM, error) {
	lead := make([]byte, leadSize)
	if _, err := io.ReadFull(r, lead); err != nil {
		return nil, readErr(err, "lead")
	}
	if !bytes.Equal(lead[:4], leadMagic) {
		return nil, rpmErr("no rpm lead magic")
	}
	if lead[4] < 3 {
		return nil, rpmErr("rpm format version %d.%d is too old", lead[4], lead[5])
	}
	sig, sigLen, err := readHeader(r, MaxRPMSignatureStore, "signature header")
	if err != nil {
		return nil, err
	}
	// The signature header is padded to a multiple of 8 bytes.
	pad := (8 - sigLen%8) % 8
	if _, err := io.ReadFull(r, make([]byte, pad)); err != nil {
		return nil, readErr(err, "signature header padding")
	}
	start := int64(leadSize) + sigLen + pad
	h, hLen, err := readHeader(r, MaxRPMHeaderStore, "header")
	if err != nil {
		return nil, err
	}
	p := &RPM{HeaderStart: start, HeaderEnd: start + hLen}
	if err := p.fill(h, sig); err != nil {
		return nil, err
	}
	return p, nil
}

func readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return rpmErr("truncated in the %s", what)
	}
	return fmt.Errorf("pkgmeta: read rpm %s: %w", what, err)
}

// header is one parsed header structure: its index and data store.
type header struct {
	what    string
	entries map[uint32]entry
	store   []byte
}

type entry struct {
	typ, offset, count uint32
}

// readHeader reads one header structure (magic, index, store) and returns
// it with its length in bytes.
func readHeader(r io.Reader, maxStore uint32, what string) (*header, int64, error) {
	intro := make([]byte, 16)
	if _, err := io.ReadFull(r, intro); err != nil {
		return nil, 0, readErr(err, what)
	}
	if !bytes.Equal(intro[:4], headerMagic) {
		return nil, 0, rpmErr("no %s magic", what)
	}
	n := binary.BigEndian.Uint32(intro[8:])
	size := binary.BigEndian.Uint32(intro[12:])
	if n == 0 || n > MaxRPMHeaderEntries {
		return nil, 0, rpmErr("%s has %d entries (at most %d)", what, n, MaxRPMHeaderEntries)
	}
	if size > maxStore {
		return nil, 0, rpmErr("%s store of %d bytes is over %d", what, size, maxStore)
	}
	index, err := readN(r, 16*int64(n))
	if err != nil {
		return nil, 0, readErr(err, what)
	}
	store, err := readN(r, int64(size))
	if err != nil {
		return nil, 0, readErr(err, what)
	}
	h := &header{what: what, entries: make(map[uint32]entry, n), store: store}
	for i := range int(n) {
		e := index[16*i:]
		tag := binary.BigEndian.Uint32(e)
		en := entry{
			typ:    binary.BigEndian.Uint32(e[4:]),
			offset: binary.BigEndian.Uint32(e[8:]),
			count:  binary.BigEndian.Uint32(e[12:]),
		}
		if en.offset > size {
			return nil, 0, rpmErr("%s tag %d points past its store", what, tag)
		}
		if _, dup := h.entries[tag]; !dup {
			h.entries[tag] = en
		}
	}
	return h, 16 + int64(len(index)) + int64(size), nil
}

// readN reads exactly n bytes. Memory grows with the bytes actually read,
// so a short file claiming a large store costs no more than its length.
func readN(r io.Reader, n int64) ([]byte, error) {
	if n <= 64<<10 {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, r, n)
	if got < n && err == nil {
		err = io.ErrUnexpectedEOF
	}
	return buf.Bytes(), err
}

// strings returns the strings of tag (STRING, STRING_ARRAY or I18NSTRING),
// at most max of them; a missing tag is nil.
func (h *header) strings(tag uint32, max int) ([]string, error) {
	e, ok := h.entries[tag]
	if !ok {
		return nil, nil
	}
	switch e.typ {
	case typeString:
		if e.count != 1 {
			return nil, rpmErr("%s tag %d: a string with count %d", h.what, tag, e.count)
		}
	case typeStringArray, typeI18NString:
	default:
		return nil, rpmErr("%s tag %d has type %d, not a string", h.what, tag, e.typ)
	}
	if int64(e.count) > int64(max) {
		return nil, rpmErr("%s tag %d has %d strings (at most %d)", h.what, tag, e.count, max)
	}
	out := make([]string, 0, e.count)
	b := h.store[e.offset:]
	for range e.count {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return nil, rpmErr("%s tag %d: a string runs past the store", h.what, tag)
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out, nil
}

// str returns the first string of tag ("" when missing): for I18NSTRING
// that is the untranslated text.
func (h *header) str(tag uint32) (string, error) {
	s, err := h.strings(tag, MaxRPMHeaderEntries)
	if err != nil || len(s) == 0 {
		return "", err
	}
	return s[0], nil
}

// ints returns the integers of tag (INT8 to INT64, CHAR), at most max.
func (h *header) ints(tag uint32, max int) ([]int64, error) {
	e, ok := h.entries[tag]
	if !ok {
		return nil, nil
	}
	var width uint32
	switch e.typ {
	case typeChar, typeInt8:
		width = 1
	case typeInt16:
		width = 2
	case typeInt32:
		width = 4
	case typeInt64:
		width = 8
	default:
		return nil, rpmErr("%s tag %d has type %d, not a number", h.what, tag, e.typ)
	}
	if int64(e.count) > int64(max) {
		return nil, rpmErr("%s tag %d has %d numbers (at most %d)", h.what, tag, e.count, max)
	}
	if uint64(e.offset)+uint64(e.count)*uint64(width) > uint64(len(h.store)) {
		return nil, rpmErr("%s tag %d runs past the store", h.what, tag)
	}
	b := h.store[e.offset:]
	out := make([]int64, e.count)
	for i := range out {
		switch width {
		case 1:
			out[i] = int64(b[i])
		case 2:
			out[i] = int64(binary.BigEndian.Uint16(b[2*i:]))
		case 4:
			out[i] = int64(binary.BigEndian.Uint32(b[4*i:]))
		case 8:
			v := binary.BigEndian.Uint64(b[8*i:])
			if v > 1<<62 {
				return nil, rpmErr("%s tag %d: number %d out of range", h.what, tag, v)
			}
			out[i] = int64(v)
		}
	}
	return out, nil
}

// num returns the first number of tag and whether the tag is there.
func (h *header) num(tag uint32) (int64, bool, error) {
	v, err := h.ints(tag, MaxRPMHeaderEntries)
	if err != nil || len(v) == 0 {
		return 0, false, err
	}
	return v[0], true, nil
}

func (p *RPM) fill(h, sig *header) error {
	var err error
	text := func(tag uint32, dst *string) {
		if err == nil {
			*dst, err = h.str(tag)
		}
	}
	text(tagName, &p.Name)
	text(tagVersion, &p.Version)
	text(tagRelease, &p.Release)
	text(tagArch, &p.Arch)
	text(tagSummary, &p.Summary)
	text(tagDescription, &p.Description)
	text(tagURL, &p.URL)
	text(tagLicense, &p.License)
	text(tagVendor, &p.Vendor)
	text(tagGroup, &p.Group)
	text(tagBuildHost, &p.BuildHost)
	text(tagSourceRPM, &p.SourceRPM)
	text(tagPackager, &p.Packager)
	if err != nil {
		return err
	}
	for what, v := range map[string]string{"name": p.Name, "version": p.Version, "release": p.Release, "arch": p.Arch} {
		if v == "" {
			return rpmErr("the header has no %s", what)
		}
	}
	for _, s := range []string{p.Name, p.Version, p.Release, p.Arch} {
		if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' }) {
			return rpmErr("name, version, release or arch %q has white space, a slash or a control character", s)
		}
	}
	if src, ok, e := h.num(tagSourcePackage); e != nil {
		return e
	} else if ok && src != 0 {
		p.Arch = "src"
	}
	if v, ok, e := h.num(tagEpoch); e != nil {
		return e
	} else if ok {
		if v > 1<<31 {
			return rpmErr("epoch %d out of range", v)
		}
		p.Epoch = uint32(v)
	}
	if p.BuildTime, _, err = h.num(tagBuildTime); err != nil {
		return err
	}
	// rpm keeps 64-bit sizes only where the 32-bit ones overflow.
	if p.InstalledSize, err = firstNum(tagIn{h, tagLongSize}, tagIn{h, tagSize}, tagIn{sig, sigTagSize}); err != nil {
		return err
	}
	if p.ArchiveSize, err = firstNum(tagIn{h, tagLongArchive}, tagIn{h, tagArchiveSize}, tagIn{sig, sigTagLongArchive}, tagIn{sig, sigTagPayloadSize}); err != nil {
		return err
	}

	deps := []struct {
		dst                  *[]RPMDep
		name, flags, version uint32
		what                 string
	}{
		{&p.Provides, tagProvideName, tagProvideFlags, tagProvideVer, "provides"},
		{&p.Requires, tagRequireName, tagRequireFlags, tagRequireVer, "requires"},
		{&p.Conflicts, tagConflictName, tagConflictFlags, tagConflictVer, "conflicts"},
		{&p.Obsoletes, tagObsoleteName, tagObsoleteFlags, tagObsoleteVer, "obsoletes"},
		{&p.Recommends, tagRecommendName, tagRecommendFlag, tagRecommendVer, "recommends"},
		{&p.Suggests, tagSuggestName, tagSuggestFlags, tagSuggestVer, "suggests"},
		{&p.Supplements, tagSupplementNam, tagSupplementFlg, tagSupplementVer, "supplements"},
		{&p.Enhances, tagEnhanceName, tagEnhanceFlags, tagEnhanceVer, "enhances"},
	}
	for _, d := range deps {
		names, err := h.strings(d.name, MaxRPMDeps)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			continue
		}
		flags, err := h.ints(d.flags, MaxRPMDeps)
		if err != nil {
			return err
		}
		versions, err := h.strings(d.version, MaxRPMDeps)
		if err != nil {
			return err
		}
		if len(flags) != len(names) || len(versions) != len(names) {
			return rpmErr("%s: %d names, %d flags and %d versions", d.what, len(names), len(flags), len(versions))
		}
		out := make([]RPMDep, len(names))
		for i := range names {
			out[i] = RPMDep{Name: names[i], Flags: uint32(flags[i]), Version: versions[i]}
		}
		*d.dst = out
	}

	if err := p.fillFiles(h); err != nil {
		return err
	}
	return p.fillChangelogs(h)
}

type tagIn struct {
	h   *header
	tag uint32
}

// firstNum returns the number of the first tag present, 0 if none is.
func firstNum(tags ...tagIn) (int64, error) {
	for _, t := range tags {
		v, ok, err := t.h.num(t.tag)
		if err != nil {
			return 0, err
		}
		if ok {
			return v, nil
		}
	}
	return 0, nil
}

func (p *RPM) fillFiles(h *header) error {
	base, err := h.strings(tagBaseNames, MaxRPMFiles)
	if err != nil || len(base) == 0 {
		return err
	}
	dirs, err := h.strings(tagDirNames, MaxRPMFiles)
	if err != nil {
		return err
	}
	idx, err := h.ints(tagDirIndexes, MaxRPMFiles)
	if err != nil {
		return err
	}
	modes, err := h.ints(tagFileModes, MaxRPMFiles)
	if err != nil {
		return err
	}
	flags, err := h.ints(tagFileFlags, MaxRPMFiles)
	if err != nil {
		return err
	}
	if len(idx) != len(base) || len(modes) != len(base) || len(flags) != len(base) {
		return rpmErr("file list: %d names, %d directory indexes, %d modes and %d flags", len(base), len(idx), len(modes), len(flags))
	}
	p.Files = make([]RPMFile, len(base))
	for i, b := range base {
		if idx[i] >= int64(len(dirs)) {
			return rpmErr("file %q has directory index %d of %d", b, idx[i], len(dirs))
		}
		f := RPMFile{Path: dirs[idx[i]] + b}
		if modes[i]&modeTypeMask == modeDir {
			f.Dir = true
		} else if flags[i]&fileFlagGhost != 0 {
			f.Ghost = true
		}
		p.Files[i] = f
	}
	return nil
}

func (p *RPM) fillChangelogs(h *header) error {
	// The header may hold thousands of entries; only the newest are kept,
	// but the counts must still agree.
	e, ok := h.entries[tagChangelogTime]
	if !ok {
		return nil
	}
	n := int(e.count)
	if n > MaxRPMHeaderEntries*4 {
		return rpmErr("%d changelog entries", n)
	}
	times, err := h.ints(tagChangelogTime, n)
	if err != nil {
		return err
	}
	names, err := h.strings(tagChangelogName, n)
	if err != nil {
		return err
	}
	texts, err := h.strings(tagChangelogText, n)
	if err != nil {
		return err
	}
	if len(names) != n || len(texts) != n {
		return rpmErr("changelog: %d times, %d names and %d texts", n, len(names), len(texts))
	}
	n = min(n, MaxRPMChangelogs)
	p.Changelogs = make([]RPMChangelog, n)
	for i := range n {
		p.Changelogs[i] = RPMChangelog{Author: names[i], Time: times[i], Text: texts[i]}
	}
	return nil
}

// EVR returns the package's "[epoch:]version-release", as rpm -q shows
// it with %{EVR}.
func (p *RPM) EVR() string {
	s := p.Version + "-" + p.Release
	if p.Epoch != 0 {
		s = strconv.FormatUint(uint64(p.Epoch), 10) + ":" + s
	}
	return s
}

// rpmPrefix is how much of an .rpm the server keeps to read its headers:
// the lead, the signature header and the main header come first, and a
// main header of a few MiB already lists tens of thousands of files.
const rpmPrefix = 8 << 20

var rpmFormat = &Format{
	Name: "rpm", Ext: ".rpm", Prefix: rpmPrefix,
	Extract: extractRPM, Upstream: RPMUpstream, Arch: RPMArchToPortal,
}

func init() { Register(rpmFormat) }

// RPM architectures the portal has names for.
var rpmArches = map[string]string{"x86_64": "amd64", "aarch64": "arm64", "noarch": "any", "i686": "386", "i386": "386", "armv7hl": "arm"}

// RPMArchToPortal maps an RPM architecture to the portal's arch
// (releases.ParseArch): x86_64 -> amd64, aarch64 -> arm64, noarch -> any,
// i686 and i386 -> 386, armv7hl -> arm.
func RPMArchToPortal(a string) (string, bool) {
	p, ok := rpmArches[a]
	return p, ok
}

// RPMUpstream returns the software version of an RPM "[epoch:]version-release":
// without the epoch and the release, and with "~" (which sorts before the
// final version in RPM, like SemVer's pre-releases) as "-":
// "2:1.2.0~rc.1-3.el9" is "1.2.0-rc.1".
func RPMUpstream(v string) string {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		v = v[:i]
	}
	return strings.ReplaceAll(v, "~", "-")
}

// extractRPM reads an .rpm for the catalog: releases.Package with Format
// "rpm", Version "[epoch:]version-release", and Meta holding the RPM
// (see DecodeRPM).
func extractRPM(r io.ReaderAt, size int64) (releases.Package, error) {
	p, err := ParseRPM(io.NewSectionReader(r, 0, size))
	if errors.Is(err, errBeyondPrefix) {
		return releases.Package{}, unprocessable("the rpm header lies beyond the first %d bytes, where the portal reads package metadata", rpmPrefix)
	}
	if errors.Is(err, ErrNotRPM) {
		return releases.Package{}, unprocessable("%s", strings.TrimPrefix(err.Error(), ErrNotRPM.Error()+": "))
	}
	if err != nil {
		return releases.Package{}, err
	}
	if s, ok := p.firstControl(); ok {
		return releases.Package{}, unprocessable("the rpm header has a control character in %q (createrepo refuses such packages too)", truncate(s, 60))
	}
	meta, err := p.encode()
	if err != nil {
		return releases.Package{}, err
	}
	return releases.Package{Format: "rpm", Name: p.Name, Version: p.EVR(), Arch: p.Arch, Meta: meta}, nil
}

// firstControl returns the first string of p holding a control character
// other than tab, LF and CR (which XML cannot carry).
func (p *RPM) firstControl() (string, bool) {
	bad := func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool { return r < 32 && r != '\t' && r != '\n' && r != '\r' })
	}
	for _, s := range []string{p.Summary, p.Description, p.URL, p.License, p.Vendor, p.Group, p.BuildHost, p.SourceRPM, p.Packager} {
		if bad(s) {
			return s, true
		}
	}
	for _, ds := range [][]RPMDep{p.Provides, p.Requires, p.Conflicts, p.Obsoletes, p.Recommends, p.Suggests, p.Supplements, p.Enhances} {
		for _, d := range ds {
			if bad(d.Name) || bad(d.Version) {
				return d.Name + " " + d.Version, true
			}
		}
	}
	for _, f := range p.Files {
		if bad(f.Path) {
			return f.Path, true
		}
	}
	for _, c := range p.Changelogs {
		if bad(c.Author) || bad(c.Text) {
			return c.Author, true
		}
	}
	return "", false
}

// encode returns p as releases.Package.Meta: a JSON string holding the
// base64 of the gzipped JSON of p, within MaxStored. A package too large
// for that keeps one changelog entry, then only the files primary.xml
// lists (FilesTrimmed), before it is refused.
func (p *RPM) encode() (json.RawMessage, error) {
	q := *p
	for step := 0; ; step++ {
		switch step {
		case 1:
			q.Changelogs = q.Changelogs[:min(1, len(q.Changelogs))]
		case 2:
			var keep []RPMFile
			for _, f := range q.Files {
				if strings.HasPrefix(f.Path, "/etc/") || strings.Contains(f.Path, "bin/") || f.Path == "/usr/lib/sendmail" {
					keep = append(keep, f)
				}
			}
			q.Files, q.FilesTrimmed = keep, true
		case 3:
			return nil, unprocessable("the rpm header's metadata (%d files, %d dependencies) is too large for the portal's catalog, even without the files repodata's primary does not list", len(p.Files), len(p.Requires)+len(p.Provides))
		}
		raw, err := json.Marshal(&q)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(raw)
		zw.Close()
		enc, err := json.Marshal(base64.StdEncoding.EncodeToString(buf.Bytes()))
		if err != nil {
			return nil, err
		}
		if len(enc) <= MaxStored {
			return enc, nil
		}
	}
}

// DecodeRPM returns the RPM that extraction stored in a package's Meta.
func DecodeRPM(meta json.RawMessage) (*RPM, error) {
	var s string
	if err := json.Unmarshal(meta, &s); err != nil {
		return nil, fmt.Errorf("pkgmeta: rpm meta: %w", err)
	}
	gz, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("pkgmeta: rpm meta: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("pkgmeta: rpm meta: %w", err)
	}
	// Encoded within MaxStored, gzip's ratio bounds what it can hold.
	raw, err := io.ReadAll(io.LimitReader(zr, 1100*MaxStored))
	if err != nil {
		return nil, fmt.Errorf("pkgmeta: rpm meta: %w", err)
	}
	var p RPM
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("pkgmeta: rpm meta: %w", err)
	}
	return &p, nil
}
