package main

import (
	"flag"
	"os"

	"github.com/portaldist/portal/configs"
)

// configFlags registers the flags every store-opening command shares and
// returns a loader that merges them over file and environment.
func configFlags(fs *flag.FlagSet) func() (*configs.Config, error) {
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

func printConfig() error {
	_, err := os.Stdout.Write(configs.DefaultYAML)
	return err
}
