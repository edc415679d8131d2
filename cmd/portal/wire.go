package main

import (
	"io"
	"os"
	"strings"

	"github.com/portaldist/portal/configs"
)

// stringFlags is what configFlags needs of a flag set: the standard
// library's and pflag's (cobra's) both have it.
type stringFlags interface {
	String(name, value, usage string) *string
}

// configFlags registers the flags every store-opening command shares and
// returns a loader that merges them over file and environment.
func configFlags(fs stringFlags) func() (*configs.Config, error) {
	file := fs.String("config", "", "config file (YAML)")
	listen := fs.String("listen", "", "address to listen on (listen)")
	dataDir := fs.String("data-dir", "", "data directory (data_dir)")
	return func() (*configs.Config, error) {
		flags := map[string]string{}
		if *listen != "" {
			flags["listen"] = *listen
		}
		if *dataDir != "" {
			flags["data_dir"] = *dataDir
		}
		return configs.Load(configs.LoadOptions{File: *file, Env: os.Environ(), Flags: flags})
	}
}

// configDefault is the documented default configuration.
func configDefault() []byte { return configs.DefaultYAML }

// readerOr returns r, or an empty reader when r is nil.
func readerOr(r io.Reader) io.Reader {
	if r == nil {
		return strings.NewReader("")
	}
	return r
}
