// Command etcdcluster runs a 3-member etcd cluster on 127.0.0.1 (etcd's own
// server, embedded, through internal/etcdtest) for scripts/bench.sh's etcd
// lines. It prints the client endpoints, comma-separated, on one line once
// the cluster has a leader, and runs until SIGTERM or SIGINT. The members
// do not fsync (see internal/etcdtest): the figures are etcd's CPU and
// round trips, not a disk's.
//
//	etcdcluster [-dir DIR]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/portaldist/portal/internal/etcdtest"
)

func main() {
	dir := flag.String("dir", "", "members' data directories (default: a temporary directory, removed at exit)")
	flag.Parse()
	c, err := etcdtest.Start(etcdtest.Options{Dir: *dir})
	if err != nil {
		log.Fatalf("etcdcluster: %v", err)
	}
	defer c.Close()
	fmt.Println(strings.Join(c.Endpoints(), ","))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
