package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: Load on arbitrary YAML bytes and an arbitrary value of one
// PORTAL_* variable never panics; it returns either a Config or errors
// that each name what is wrong: a config key (known, or the unknown one
// the file holds) or, when the file does not parse at all, the file. A
// secret key's value never appears in an error.
func FuzzLoad(f *testing.F) {
	for _, s := range []struct {
		yaml string
		env  uint8
		val  string
	}{
		{"listen: 127.0.0.1:9000\n", 0, ""},
		{"objects:\n  backend: s3\n", 0, ""},
		{"objects: s3\n", 0, ""},
		{"objects:\n  local:\n    secret: short\n", 0, ""},
		{"downloads:\n  url_ttl: 5\n", 0, ""},
		{"downloads:\n  url_ttl: -1s\n  max_url_ttl: 1ns\n", 0, ""},
		{"limits:\n  max_body: 1e30\n", 0, ""},
		{"uploads: {multipart_part_size: [1, 2]}\n", 0, ""},
		{"lisen: x\n", 0, ""},
		{"a: &a [*a]\n", 0, ""},
		{"\t- not yaml: [\n", 0, ""},
		{"public_url: ftp://x\n", 0, ""},
		{"log:\n  level: loud\n  access: maybe\n", 0, ""},
		{"", 3, "not-a-duration"},
		{"", 7, "999999999999999999999999"},
		{"", 11, "-5"},
		{"", 0, "true"},
	} {
		f.Add([]byte(s.yaml), s.env, s.val)
	}
	keys := Keys()
	secret := map[string]bool{}
	for _, l := range leaves() {
		secret[l.key] = l.secret
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, yaml []byte, env uint8, val string) {
		if len(yaml) > 4096 || len(val) > 1024 || strings.ContainsAny(val, "\x00") {
			return
		}
		path := filepath.Join(dir, "portal.yaml")
		if err := os.WriteFile(path, yaml, 0o600); err != nil {
			t.Fatal(err)
		}
		key := keys[int(env)%len(keys)]
		if secret[key] && val != "" {
			val = "S3CR3T-" + val
		}
		cfg, err := Load(LoadOptions{File: path, Env: []string{EnvName(key) + "=" + val, "PORTAL_DATA_DIR=" + dir}})
		if err == nil {
			if cfg == nil {
				t.Fatal("Load returned neither a Config nor an error")
			}
			return
		}
		if cfg != nil {
			t.Fatalf("Load returned a Config and an error: %v", err)
		}
		if secret[key] && val != "" && strings.Contains(err.Error(), val) {
			t.Fatalf("the value of secret %s appears in the error: %v", key, err)
		}
		for _, e := range leafErrors(err) {
			msg := e.Error()
			if !strings.HasPrefix(msg, "configs: ") {
				t.Fatalf("error without the package prefix: %q", msg)
			}
			if strings.Contains(msg, "parse "+path) || strings.Contains(msg, `key "`) {
				continue // an unparseable file; an unknown or misplaced key, named
			}
			named := false
			for _, k := range keys {
				if strings.HasPrefix(msg, "configs: "+k+":") {
					named = true
					break
				}
			}
			if !named {
				t.Fatalf("error names no key: %q (file %q, %s=%q)", msg, yaml, EnvName(key), val)
			}
		}
	})
}

// leafErrors flattens errors.Join trees.
func leafErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}
