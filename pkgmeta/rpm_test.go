package pkgmeta

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/internal/rpmtest"
)

// rpmQuery asks rpm itself (the reference reader) for a query format over
// the file.
func rpmQuery(t *testing.T, path, format string) string {
	t.Helper()
	out, err := exec.Command("rpm", "-qp", "--nosignature", "--nodigest", "--qf", format, path).Output()
	if err != nil {
		t.Fatalf("rpm -qp %s: %v", format, err)
	}
	return string(out)
}

func TestParseRPMAgreesWithRPM(t *testing.T) {
	tests := []struct {
		name string
		spec rpmtest.Spec
		arch string
	}{
		{"noarch", rpmtest.Spec{}, "noarch"},
		{"x86_64", rpmtest.Spec{Target: "x86_64", Version: "2.0.1", Release: "3.el9"}, "x86_64"},
		{"aarch64 with epoch", rpmtest.Spec{Target: "aarch64", Epoch: 2, Version: "1.0~rc.1"}, "aarch64"},
		{"long changelog", rpmtest.Spec{Name: "acme-agent", Changelogs: 15}, "noarch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := rpmtest.Build(t, tt.spec)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			p, err := ParseRPM(f)
			if err != nil {
				t.Fatalf("ParseRPM: %v", err)
			}
			if p.Arch != tt.arch {
				t.Errorf("arch %q, want %q", p.Arch, tt.arch)
			}
			want := rpmQuery(t, path, "%{NAME}\n%{EPOCHNUM}\n%{VERSION}\n%{RELEASE}\n%{ARCH}\n%{SUMMARY}\n%{URL}\n%{LICENSE}\n%{VENDOR}\n%{GROUP}\n%{BUILDHOST}\n%{SOURCERPM}\n%{PACKAGER}\n%{BUILDTIME}\n%{LONGSIZE}\n%{LONGARCHIVESIZE}\n%{EVR}")
			got := strings.Join([]string{p.Name, strconv.Itoa(int(p.Epoch)), p.Version, p.Release, p.Arch, p.Summary, p.URL, p.License, p.Vendor, p.Group, p.BuildHost, p.SourceRPM, p.Packager,
				strconv.FormatInt(p.BuildTime, 10), strconv.FormatInt(p.InstalledSize, 10), strconv.FormatInt(p.ArchiveSize, 10), p.EVR()}, "\n")
			if got != want {
				t.Errorf("fields:\n got %q\nwant %q", got, want)
			}
			if d := rpmQuery(t, path, "%{DESCRIPTION}"); p.Description != d {
				t.Errorf("description %q, want %q", p.Description, d)
			}
			for _, kind := range []struct {
				tag  string
				deps []RPMDep
			}{
				{"PROVIDE", p.Provides}, {"REQUIRE", p.Requires}, {"CONFLICT", p.Conflicts}, {"OBSOLETE", p.Obsoletes},
				{"RECOMMEND", p.Recommends}, {"SUGGEST", p.Suggests}, {"SUPPLEMENT", p.Supplements}, {"ENHANCE", p.Enhances},
			} {
				want := rpmQuery(t, path, "[%{"+kind.tag+"NAME}|%{"+kind.tag+"FLAGS}|%{"+kind.tag+"VERSION}\n]")
				var got strings.Builder
				for _, d := range kind.deps {
					got.WriteString(d.Name + "|" + strconv.FormatUint(uint64(d.Flags), 10) + "|" + d.Version + "\n")
				}
				if got.String() != want || want == "" {
					t.Errorf("%s:\n got %q\nwant %q", kind.tag, got.String(), want)
				}
			}
			wantFiles := rpmQuery(t, path, "[%{FILENAMES}|%{FILEMODES:perms}|%{FILEFLAGS:fflags}\n]")
			var gotFiles strings.Builder
			for _, f := range p.Files {
				kind := "-"
				if f.Dir {
					kind = "d"
				}
				ghost := ""
				if f.Ghost {
					ghost = "g"
				}
				gotFiles.WriteString(f.Path + "|" + kind + "|" + ghost + "\n")
			}
			// rpm prints the full mode and every file flag; compare the
			// type letter and the ghost flag.
			var wantShort strings.Builder
			for _, line := range strings.Split(strings.TrimSuffix(wantFiles, "\n"), "\n") {
				parts := strings.Split(line, "|")
				kind := "-"
				if strings.HasPrefix(parts[1], "d") {
					kind = "d"
				}
				ghost := ""
				if strings.Contains(parts[2], "g") && kind != "d" {
					ghost = "g"
				}
				wantShort.WriteString(parts[0] + "|" + kind + "|" + ghost + "\n")
			}
			if gotFiles.String() != wantShort.String() {
				t.Errorf("files:\n got %q\nwant %q", gotFiles.String(), wantShort.String())
			}
			wantLog := rpmQuery(t, path, "[%{CHANGELOGTIME}|%{CHANGELOGNAME}|%{CHANGELOGTEXT}\n]")
			lines := strings.SplitAfter(wantLog, "\n")
			if len(lines)-1 < MaxRPMChangelogs && len(p.Changelogs) != len(lines)-1 {
				t.Errorf("%d changelogs, rpm has %d", len(p.Changelogs), len(lines)-1)
			}
			if len(p.Changelogs) > MaxRPMChangelogs {
				t.Errorf("%d changelogs kept, over %d", len(p.Changelogs), MaxRPMChangelogs)
			}
			for i, c := range p.Changelogs {
				if got := strconv.FormatInt(c.Time, 10) + "|" + c.Author + "|" + c.Text + "\n"; got != lines[i] {
					t.Errorf("changelog %d: %q, want %q", i, got, lines[i])
				}
			}
			// The header range: rpm reads the main header starting at
			// HeaderStart, and it ends where the payload begins.
			raw, _ := os.ReadFile(path)
			if !bytes.Equal(raw[p.HeaderStart:p.HeaderStart+4], headerMagic) || p.HeaderEnd <= p.HeaderStart || p.HeaderEnd >= int64(len(raw)) {
				t.Errorf("header range %d-%d of a %d-byte file", p.HeaderStart, p.HeaderEnd, len(raw))
			}
			// Parsing reads nothing past the header: the payload may be cut.
			if _, err := ParseRPM(bytes.NewReader(raw[:p.HeaderEnd])); err != nil {
				t.Errorf("the header alone does not parse: %v", err)
			}
		})
	}
}

// TestParseRPMHostile: truncations, wrong magic and lying counts and
// offsets fail with ErrNotRPM, and nothing panics.
func TestParseRPMHostile(t *testing.T) {
	raw, err := os.ReadFile(rpmtest.Build(t, rpmtest.Spec{Target: "x86_64"}))
	if err != nil {
		t.Fatal(err)
	}
	good, err := ParseRPM(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	start := int(good.HeaderStart)
	set32 := func(b []byte, off int, v uint32) []byte {
		c := bytes.Clone(b)
		binary.BigEndian.PutUint32(c[off:], v)
		return c
	}
	// Index entry i of the main header starts at start+16+16*i.
	firstEntry := start + 16
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated in the lead"},
		{"a deb", []byte("!<arch>\ndebian-binary   " + strings.Repeat(" ", 100)), "no rpm lead magic"},
		{"old format", func() []byte { c := bytes.Clone(raw); c[4] = 2; return c }(), "too old"},
		{"no signature magic", set32(raw, leadSize, 0), "no signature header magic"},
		{"signature entries zero", set32(raw, leadSize+8, 0), "signature header has 0 entries"},
		{"signature entries huge", set32(raw, leadSize+8, 1<<30), "signature header has 1073741824 entries"},
		{"signature store huge", set32(raw, leadSize+12, 1<<30), "signature header store of 1073741824 bytes"},
		{"header entries huge", set32(raw, start+8, 0xffffffff), "header has 4294967295 entries"},
		{"header store huge", set32(raw, start+12, 0xffffffff), "header store of 4294967295 bytes"},
		{"offset past store", set32(raw, firstEntry+8, 0x7fffffff), "points past its store"},
		{"header store longer than the file", set32(raw, start+12, MaxRPMHeaderStore), "truncated in the header"},
		{"only the lead", raw[:leadSize], "truncated in the signature header"},
		{"cut in the main header", raw[:start+40], "truncated in the header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRPM(bytes.NewReader(tt.data))
			if !errors.Is(err, ErrNotRPM) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want ErrNotRPM with %q", err, tt.want)
			}
		})
	}
	// Every truncation before the end of the header fails cleanly.
	for n := 0; n < int(good.HeaderEnd); n += 7 {
		if _, err := ParseRPM(bytes.NewReader(raw[:n])); !errors.Is(err, ErrNotRPM) {
			t.Fatalf("cut at %d: %v", n, err)
		}
	}
	// Retyped or recounted entries of the main header: errors or a
	// result, never a panic.
	n := int(binary.BigEndian.Uint32(raw[start+8:]))
	for i := range n {
		for _, mut := range []struct {
			off int
			v   uint32
		}{{4, typeInt64}, {4, typeString}, {4, 99}, {12, 0xffffff}, {12, 0}, {8, uint32(len(raw))}} {
			c := set32(raw, firstEntry+16*i+mut.off, mut.v)
			if _, err := ParseRPM(bytes.NewReader(c)); err != nil && !errors.Is(err, ErrNotRPM) {
				t.Fatalf("entry %d mutated: %v", i, err)
			}
		}
	}
}

// FuzzParseRPM: any bytes give a result or ErrNotRPM, within the bounds.
func FuzzParseRPM(f *testing.F) {
	raw, err := os.ReadFile(rpmtest.Build(f, rpmtest.Spec{Target: "x86_64"}))
	if err != nil {
		f.Fatal(err)
	}
	p, err := ParseRPM(bytes.NewReader(raw))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw[:p.HeaderEnd])
	f.Add(raw[:leadSize+40])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseRPM(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrNotRPM) {
				t.Fatalf("error without ErrNotRPM: %v", err)
			}
			return
		}
		if p.HeaderEnd > int64(len(b)) || p.HeaderStart < leadSize || len(p.Changelogs) > MaxRPMChangelogs || len(p.Files) > MaxRPMFiles {
			t.Fatalf("out of bounds: %d-%d of %d, %d changelogs, %d files", p.HeaderStart, p.HeaderEnd, len(b), len(p.Changelogs), len(p.Files))
		}
	})
}

// The rpm format through the package's own doors: Extract by file name,
// the stored Meta, CheckRelease's version and arch rules.
func TestExtractRPM(t *testing.T) {
	tests := []struct {
		name            string
		spec            rpmtest.Spec
		release         string
		platform, arch  string
		wantVersion     string
		refusal, detail string
	}{
		{"noarch", rpmtest.Spec{}, "1.2.0", "linux", "any", "1.2.0-1", "", ""},
		{"x86_64 with a dist release", rpmtest.Spec{Target: "x86_64", Release: "3.el9"}, "1.2", "linux", "amd64", "1.2.0-3.el9", "", ""},
		{"epoch and pre-release", rpmtest.Spec{Target: "aarch64", Epoch: 2, Version: "1.0.0~rc.1"}, "1.0.0-rc.1", "linux", "arm64", "2:1.0.0~rc.1-1", "", ""},
		{"other version", rpmtest.Spec{Version: "2.0.1"}, "2.0.0", "linux", "any", "", "is not the release's version 2.0.0", "package_version"},
		{"final for a pre-release", rpmtest.Spec{Version: "1.0.0"}, "1.0.0-rc.1", "linux", "any", "", "is not the release's version", "release_version"},
		{"other arch", rpmtest.Spec{Target: "x86_64"}, "1.2.0", "linux", "arm64", "", "declared as linux/arm64", "declared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := rpmtest.Build(t, tt.spec)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Extract("pkg.RPM", bytes.NewReader(raw), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			err = CheckRelease(p, tt.release, tt.platform, tt.arch)
			if tt.refusal != "" {
				var pe *portal.Error
				if !errors.As(err, &pe) || pe.Code != portal.EUnprocessable || !strings.Contains(pe.Message, tt.refusal) || pe.Details[tt.detail] == nil {
					t.Fatalf("CheckRelease: %v, want 422 with %q and detail %q", err, tt.refusal, tt.detail)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckRelease: %v", err)
			}
			if p.Format != "rpm" || p.Version != tt.wantVersion || p.Name != "acme-server" {
				t.Fatalf("package %+v", p)
			}
			if plat, arch, err := Platform(p); err != nil || plat != tt.platform || arch != tt.arch {
				t.Fatalf("Platform: %s %s %v", plat, arch, err)
			}
			m, err := DecodeRPM(p.Meta)
			if err != nil {
				t.Fatal(err)
			}
			direct, _ := ParseRPM(bytes.NewReader(raw))
			a, _ := json.Marshal(m)
			b, _ := json.Marshal(direct)
			if !bytes.Equal(a, b) {
				t.Fatalf("decoded meta differs:\n%s\n%s", a, b)
			}
		})
	}
}

// Hostile .rpm files at extraction: 422 with a reason, never a panic.
func TestExtractRPMHostile(t *testing.T) {
	raw, err := os.ReadFile(rpmtest.Build(t, rpmtest.Spec{}))
	if err != nil {
		t.Fatal(err)
	}
	good, _ := ParseRPM(bytes.NewReader(raw))
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"garbage", bytes.Repeat([]byte("not an rpm "), 50), "no rpm lead magic"},
		{"a deb named .rpm", append([]byte("!<arch>\n"), make([]byte, 200)...), "no rpm lead magic"},
		{"cut in the header", raw[:good.HeaderStart+100], "truncated in the header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Extract("x.rpm", bytes.NewReader(tt.data), int64(len(tt.data)))
			var pe *portal.Error
			if !errors.As(err, &pe) || pe.Code != portal.EUnprocessable || !strings.Contains(pe.Message, tt.want) {
				t.Fatalf("err %v, want 422 with %q", err, tt.want)
			}
		})
	}
	// A capture that kept less than the header says so.
	c := prefixReader{raw[:good.HeaderStart+64]}
	if _, err := extractRPM(c, int64(len(raw))); err == nil || !strings.Contains(err.Error(), "beyond the first") {
		t.Fatalf("short capture: %v", err)
	}
}

func TestRPMUpstream(t *testing.T) {
	for in, want := range map[string]string{"1.2.0-1": "1.2.0", "2:1.2.0~rc.1-3.el9": "1.2.0-rc.1", "1.0": "1.0", "3:4.5-6-7": "4.5-6"} {
		if got := RPMUpstream(in); got != want {
			t.Errorf("RPMUpstream(%q) = %q, want %q", in, got, want)
		}
	}
}

// A header too large for the catalog keeps one changelog entry, then only
// the files primary.xml lists, before it is refused.
func TestRPMEncodeBounds(t *testing.T) {
	files := func(n int, dir string) []RPMFile {
		out := make([]RPMFile, n)
		for i := range out {
			// Random-looking names, so gzip cannot fold them away.
			out[i] = RPMFile{Path: fmt.Sprintf("%s/%x/%x.so", dir, sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16)}), i)}
		}
		return out
	}
	logs := []RPMChangelog{{Author: "a", Text: "newest"}, {Author: "b", Text: "older"}}
	small := &RPM{Name: "a", Version: "1", Release: "1", Arch: "noarch", Files: files(10, "/usr/lib"), Changelogs: logs}
	big := &RPM{Name: "a", Version: "1", Release: "1", Arch: "noarch", Files: append(files(5000, "/usr/lib"), files(3, "/usr/bin")...), Changelogs: logs}
	huge := &RPM{Name: "a", Version: "1", Release: "1", Arch: "noarch", Files: files(5000, "/usr/bin")}
	for _, tc := range []struct {
		name      string
		p         *RPM
		files     int
		trimmed   bool
		changelog int
	}{
		{"small", small, 10, false, 2},
		{"many files", big, 3, true, 1},
	} {
		meta, err := tc.p.encode()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(meta) > MaxStored {
			t.Fatalf("%s: %d bytes stored", tc.name, len(meta))
		}
		got, err := DecodeRPM(meta)
		if err != nil || len(got.Files) != tc.files || got.FilesTrimmed != tc.trimmed || len(got.Changelogs) != tc.changelog {
			t.Fatalf("%s: %d files (trimmed %v), %d changelogs, %v", tc.name, len(got.Files), got.FilesTrimmed, len(got.Changelogs), err)
		}
	}
	if _, err := huge.encode(); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("huge: %v", err)
	}
	if _, err := DecodeRPM([]byte(`"bm90IGd6aXA="`)); err == nil {
		t.Fatal("DecodeRPM took bytes that are not gzip")
	}
}
