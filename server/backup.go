package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"

	"github.com/portaldist/portal/store/backup"
)

// MaxConcurrentBackups bounds the backups a process streams at once: each
// holds a snapshot of the store open while its client reads.
const MaxConcurrentBackups = 2

var backupSlots = make(chan struct{}, MaxConcurrentBackups)

// backupRoutes registers GET /v1/admin/backup (admin only).
func (s *Server) backupRoutes(v1 *gin.RouterGroup) {
	v1.GET("/admin/backup", s.requireAdmin, s.backup)
}

// backup streams a backup of the whole store (package store/backup's
// format), audited as store.backup before the first byte. The answer is
// 200 with the file as it is written, from one snapshot; a failure after
// the first byte cuts the connection, leaving the client a file without
// its checksum, which every reader of the format refuses. While the
// backup is read the store's snapshot stays open (on bbolt, a writer that
// must grow the file waits for it), so the client should read promptly.
func (s *Server) backup(c *gin.Context) {
	select {
	case backupSlots <- struct{}{}:
		defer func() { <-backupSlots }()
	default:
		e := portal.Errorf(portal.ERateLimited, "%d backups are being sent already; try again when one is done", MaxConcurrentBackups)
		e.RetryAt = s.now().Add(time.Minute)
		s.fail(c, e)
		return
	}
	name := "portal-" + s.now().UTC().Format("20060102T150405Z") + ".backup"
	h := c.Writer.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	w := &startedWriter{w: c.Writer}
	if _, err := backup.WriteAudited(c, s.Store, w, s.opts.StoreDriver, s.now()); err != nil {
		if !w.started {
			h.Del("Content-Disposition")
			h.Del("Content-Type")
			s.fail(c, err)
			return
		}
		s.log.Error("backup cut short", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// startedWriter tells whether anything was written.
type startedWriter struct {
	w       gin.ResponseWriter
	started bool
}

func (sw *startedWriter) Write(p []byte) (int, error) {
	if !sw.started {
		sw.started = true
		sw.w.WriteHeader(http.StatusOK)
	}
	return sw.w.Write(p)
}
