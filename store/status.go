package store

import (
	"context"
	"time"
)

// StatusReporter is implemented by drivers that can say more about their
// health than Ping does (the etcd driver); /readyz reports it.
type StatusReporter interface {
	// Status describes the store now. It never fails: what it could not
	// learn within ctx is reported as unreachable or zero.
	Status(ctx context.Context) Status
}

// Status is a driver's view of its store.
type Status struct {
	// Driver names the driver ("etcd").
	Driver string `json:"driver"`
	// Reachable says whether a linearizable read succeeded: the cluster
	// has a leader and a quorum answering this process.
	Reachable bool `json:"reachable"`
	// Members and MembersReachable count the configured endpoints and
	// those that answered a status request.
	Members          int `json:"members"`
	MembersReachable int `json:"members_reachable"`
	// Revision is the store's current revision (0 when unreachable).
	Revision uint64 `json:"revision"`
	// Watches is how many DB.Watch channels are open.
	Watches int `json:"watches"`
	// WatchRevision is the revision up to which every open watch has
	// received the changes (0 without watches); WatchLag is Revision
	// minus it, in revisions: how far the slowest watch is behind.
	WatchRevision uint64 `json:"watch_revision"`
	WatchLag      uint64 `json:"watch_lag"`
	// WatchQuiet is how long the slowest watch has heard nothing from the
	// store (events or progress notices); a watch that is cut off shows
	// it growing while writes go on.
	WatchQuiet time.Duration `json:"watch_quiet"`
}
