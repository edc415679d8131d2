// Command benchtool holds the small helpers of scripts/bench.sh, so the
// script needs no python or jq:
//
//	benchtool port                     print a free 127.0.0.1 TCP port
//	benchtool wait URL [SECONDS]       wait until URL answers HTTP (any status)
//	benchtool json FIELD               print a top-level string or number field of the JSON on stdin
//	benchtool pairs DIR NAME           one comparison's pairs so far; exit 3 when too spread to decide
//	benchtool rss PID                  print the process's VmRSS, VmHWM, RssAnon and RssFile in KiB
//	benchtool report DIR OUT.md        write the results table from DIR (see report.go)
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch args := os.Args[2:]; os.Args[1] {
	case "port":
		err = port()
	case "wait":
		if len(args) < 1 {
			usage()
		}
		secs := 30.0
		if len(args) > 1 {
			secs, err = strconv.ParseFloat(args[1], 64)
		}
		if err == nil {
			err = wait(args[0], time.Duration(secs*float64(time.Second)))
		}
	case "json":
		if len(args) != 1 {
			usage()
		}
		err = jsonField(args[0])
	case "pairs":
		if len(args) != 2 {
			usage()
		}
		err = pairsCmd(args[0], args[1])
	case "rss":
		if len(args) != 1 {
			usage()
		}
		err = rss(args[0])
	case "report":
		if len(args) != 2 {
			usage()
		}
		err = report(args[0], args[1])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchtool port | wait URL [SECONDS] | json FIELD | pairs DIR NAME | rss PID | report DIR OUT.md")
	os.Exit(2)
}

func port() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	return nil
}

func wait(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %v", url, d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func jsonField(field string) error {
	var m map[string]any
	if err := json.NewDecoder(os.Stdin).Decode(&m); err != nil {
		return fmt.Errorf("decode JSON: %w", err)
	}
	switch v := m[field].(type) {
	case string:
		fmt.Println(v)
	case float64:
		fmt.Println(strconv.FormatFloat(v, 'f', -1, 64))
	default:
		b, _ := json.Marshal(m)
		return fmt.Errorf("no string or number field %q in %s", field, b)
	}
	return nil
}

// rss prints "RSS HWM ANON FILE" of a process, in KiB, from
// /proc/PID/status: resident memory, its peak, and the resident memory's
// anonymous part (the Go heap, stacks) and file-backed part (the binary and
// the pages of the bbolt file's memory map that were read).
func rss(pid string) error {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return err
	}
	keys := []string{"VmRSS:", "VmHWM:", "RssAnon:", "RssFile:"}
	vals := make([]string, len(keys))
	for _, line := range strings.Split(string(b), "\n") {
		for i, k := range keys {
			if rest, ok := strings.CutPrefix(line, k); ok {
				vals[i] = strings.TrimSuffix(strings.TrimSpace(rest), " kB")
			}
		}
	}
	for i, v := range vals {
		if v == "" {
			return fmt.Errorf("no %s in /proc/%s/status", keys[i], pid)
		}
	}
	fmt.Println(strings.Join(vals, " "))
	return nil
}
