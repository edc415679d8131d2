package configs

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/viper"
)

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "PORTAL_"

// LoadOptions are the sources Load reads besides the embedded defaults.
type LoadOptions struct {
	// File is the --config path, "" for none. Its type comes from its
	// extension (.yaml, .yml, .json, .toml); any other name is read as YAML.
	// A file that cannot be read is an error.
	File string
	// Env is the environment as NAME=VALUE entries, os.Environ() normally.
	// Only PORTAL_<KEY> variables naming a config key are read (EnvName);
	// other PORTAL_* variables belong to clients and tests and are ignored.
	// Empty values count as unset; of repeated names, the last wins.
	Env []string
	// Flags maps config keys to command-line flag values, set only for the
	// flags the user gave. Keys are key paths ("listen", "data_dir",
	// "objects.s3.bucket"); "-" may stand for "_". A key that is not a
	// config key is an error: it is the caller's bug.
	Flags map[string]string
}

// Load builds the effective configuration: embedded defaults < File < Env <
// Flags, then checks every value. An unknown key in the file, at any depth,
// is an error naming it; so is any invalid value, whichever source it came
// from, reported after all sources are merged. All problems found are
// returned together (errors.Join). Load has no global state and is safe to
// call concurrently.
func Load(opts LoadOptions) (*Config, error) {
	v := viper.New()
	for key, val := range defaults() {
		v.SetDefault(key, val)
	}

	if opts.File != "" {
		settings, err := readFile(opts.File)
		if err != nil {
			return nil, err
		}
		if err := v.MergeConfigMap(settings); err != nil {
			return nil, fmt.Errorf("configs: %s: %w", opts.File, err)
		}
	}

	if env := envSettings(opts.Env); len(env) > 0 {
		// The environment merges over the file in viper's config layer: the
		// caller's opts.Env, not the process environment, is the source.
		if err := v.MergeConfigMap(env); err != nil {
			return nil, fmt.Errorf("configs: environment: %w", err)
		}
	}

	var errs []error
	for _, name := range slices.Sorted(maps.Keys(opts.Flags)) {
		val := opts.Flags[name]
		key := strings.ReplaceAll(strings.ToLower(name), "-", "_")
		if _, ok := leafIndex()[key]; !ok {
			errs = append(errs, fmt.Errorf("configs: unknown flag key %q", name))
			continue
		}
		v.Set(key, val)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	cfg := new(Config)
	root := reflect.ValueOf(cfg).Elem()
	for _, l := range leaves() {
		if err := decode(root.FieldByIndex(l.index), l, v.Get(l.key)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// EnvName is the environment variable that sets key: PORTAL_ and the key
// path upper-cased with "." replaced by "_" (objects.s3.bucket ->
// PORTAL_OBJECTS_S3_BUCKET).
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every config key path, sorted.
func Keys() []string {
	keys := make([]string, 0, len(leaves()))
	for _, l := range leaves() {
		keys = append(keys, l.key)
	}
	sort.Strings(keys)
	return keys
}

// leaf is one config key and the Config field it fills.
type leaf struct {
	key    string
	index  []int
	typ    reflect.Type
	secret bool
}

var (
	sizeType     = reflect.TypeFor[Size]()
	durationType = reflect.TypeFor[time.Duration]()
)

// leaves walks Config's mapstructure tags once; the key set is fixed at
// compile time.
var leaves = sync.OnceValue(func() []leaf {
	var out []leaf
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			key := prefix + f.Tag.Get("mapstructure")
			idx := append(slices.Clone(index), i)
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, key+".", idx)
				continue
			}
			out = append(out, leaf{key: key, index: idx, typ: f.Type, secret: f.Tag.Get("secret") == "true"})
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
})

// leafIndex maps key paths to leaves.
var leafIndex = sync.OnceValue(func() map[string]leaf {
	m := make(map[string]leaf)
	for _, l := range leaves() {
		m[l.key] = l
	}
	return m
})

// sections holds every key prefix that names a group of keys ("objects",
// "objects.s3").
var sections = sync.OnceValue(func() map[string]bool {
	m := make(map[string]bool)
	for _, l := range leaves() {
		for i := range len(l.key) {
			if l.key[i] == '.' {
				m[l.key[:i]] = true
			}
		}
	}
	return m
})

// envIndex maps environment variable names to keys.
var envIndex = sync.OnceValue(func() map[string]string {
	m := make(map[string]string)
	for _, l := range leaves() {
		m[EnvName(l.key)] = l.key
	}
	return m
})

// defaults reads the embedded default.yaml as flat key -> value. It panics
// if the embedded file does not parse: that is a build defect, caught by the
// package's tests.
var defaults = sync.OnceValue(func() map[string]any {
	d := viper.New()
	d.SetConfigType("yaml")
	if err := d.ReadConfig(bytes.NewReader(DefaultYAML)); err != nil {
		panic("configs: embedded default.yaml: " + err.Error())
	}
	m := make(map[string]any)
	for _, k := range d.AllKeys() {
		m[k] = d.Get(k)
	}
	return m
})

// readFile parses the config file and rejects keys that are not config keys
// and sections written as values (or values as sections). Keys without a
// value (`public_url:`) are dropped, so they keep their defaults.
func readFile(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configs: %w", err)
	}
	typ := "yaml"
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		typ = "json"
	case ".toml":
		typ = "toml"
	}
	f := viper.New()
	f.SetConfigType(typ)
	if err := f.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("configs: parse %s: %w", path, err)
	}
	settings := f.AllSettings()
	var errs []error
	checkKeys(settings, "", path, &errs)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return settings, nil
}

func checkKeys(m map[string]any, prefix, path string, errs *[]error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := prefix + k
		sub, isMap := m[k].(map[string]any)
		_, isLeaf := leafIndex()[key]
		switch {
		case isLeaf && isMap:
			*errs = append(*errs, fmt.Errorf("configs: key %q in %s takes a value, not a mapping", key, path))
		case isLeaf:
		case sections()[key] && isMap:
			checkKeys(sub, key+".", path, errs)
		case sections()[key]:
			*errs = append(*errs, fmt.Errorf("configs: key %q in %s is a section: write its keys under it", key, path))
		default:
			msg := fmt.Sprintf("configs: unknown key %q in %s", key, path)
			if s := suggest(key); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			*errs = append(*errs, errors.New(msg))
		}
	}
}

// suggest returns the known key closest to an unknown one, if it is close
// enough to be a typo.
func suggest(key string) string {
	best, bestD := "", 3
	for k := range leafIndex() {
		if d := editDistance(key, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if bestD > 2 {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envSettings picks the config keys out of env as a nested map for viper.
func envSettings(env []string) map[string]any {
	out := make(map[string]any)
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		key, known := envIndex()[name]
		if !known {
			continue
		}
		parts := strings.Split(key, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = make(map[string]any)
				m[p] = sub
			}
			m = sub
		}
		if val == "" {
			delete(m, parts[len(parts)-1])
			continue
		}
		m[parts[len(parts)-1]] = val
	}
	return out
}

// decode converts raw, as YAML, JSON, TOML or a string from the environment
// or a flag delivers it, into the field's type.
func decode(field reflect.Value, l leaf, raw any) error {
	bad := func(what string) error {
		if l.secret {
			return fmt.Errorf("configs: %s: the value is not %s", l.key, what)
		}
		if s, ok := raw.(string); ok {
			return fmt.Errorf("configs: %s: %q is not %s", l.key, s, what)
		}
		return fmt.Errorf("configs: %s: %v is not %s", l.key, raw, what)
	}
	switch l.typ {
	case durationType:
		s, ok := raw.(string)
		if !ok {
			if _, isNum := toInt(raw); isNum {
				return fmt.Errorf("%w (give a unit, e.g. \"%vs\")", bad("a duration"), raw)
			}
			return bad("a duration")
		}
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return bad("a duration")
		}
		field.SetInt(int64(d))
		return nil
	case sizeType:
		if n, ok := toInt(raw); ok {
			if n < 0 {
				return bad("a size")
			}
			field.SetInt(n)
			return nil
		}
		s, ok := raw.(string)
		if !ok {
			return bad("a size")
		}
		n, err := ParseSize(s)
		if err != nil {
			return bad("a size")
		}
		field.SetInt(int64(n))
		return nil
	}
	switch l.typ.Kind() {
	case reflect.Slice:
		// A list of strings: a YAML/JSON/TOML list, or comma-separated
		// text from the environment or a flag. Empty entries are dropped;
		// an empty list is nil.
		var items []string
		switch v := raw.(type) {
		case string:
			items = strings.Split(v, ",")
		case []any:
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return bad("a list of strings")
				}
				items = append(items, s)
			}
		case []string:
			items = v
		case nil:
		default:
			return bad("a list of strings")
		}
		var out []string
		for _, s := range items {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		field.Set(reflect.ValueOf(out))
		return nil
	case reflect.String:
		switch raw.(type) {
		case string, bool, int, int64, uint64, float64:
			// A YAML scalar such as `region: 1` or `listen: 8080` is meant
			// as text; the checks that follow judge the text.
			field.SetString(fmt.Sprint(raw))
			return nil
		}
		return bad("a string")
	case reflect.Bool:
		switch b := raw.(type) {
		case bool:
			field.SetBool(b)
			return nil
		case string:
			if v, err := strconv.ParseBool(strings.TrimSpace(b)); err == nil {
				field.SetBool(v)
				return nil
			}
		}
		return bad("true or false")
	case reflect.Int:
		if n, ok := toInt(raw); ok {
			field.SetInt(n)
			return nil
		}
		if s, ok := raw.(string); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 0); err == nil {
				field.SetInt(n)
				return nil
			}
		}
		return bad("an integer")
	}
	panic("configs: no decoder for " + l.key + " of type " + l.typ.String())
}

// toInt accepts the integer types parsers produce, and floats holding a
// whole number (JSON numbers, YAML 1e6).
func toInt(raw any) (int64, bool) {
	switch n := raw.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		if n <= math.MaxInt64 {
			return int64(n), true
		}
	case float64:
		if n == math.Trunc(n) && n >= math.MinInt64 && n < math.MaxInt64 {
			return int64(n), true
		}
	}
	return 0, false
}
