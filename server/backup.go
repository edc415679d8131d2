package server

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
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

// backup sends a backup of the whole store (package store/backup's
// format), audited as store.backup. The backup is first written from one
// snapshot into a temporary file, then sent from that file: the store's
// snapshot is closed before the first byte goes out, so a client that
// reads slowly holds a file descriptor and disk space, never a store
// transaction (on bbolt, an open read transaction makes every writer that
// must grow the file wait). A failure while writing is an ordinary error
// answer; the answer carries Content-Length, so a client cut off while
// reading knows its copy is short (and every reader of the format refuses
// a file without its checksum anyway).
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
	f, err := os.CreateTemp("", "portal-backup-*")
	if err != nil {
		s.fail(c, fmt.Errorf("server: backup: spool file: %w", err))
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := backup.WriteAudited(c.Request.Context(), s.Store, f, s.opts.StoreDriver, s.now()); err != nil {
		s.fail(c, err)
		return
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		s.fail(c, fmt.Errorf("server: backup: spool file: %w", err))
		return
	}
	name := "portal-" + s.now().UTC().Format("20060102T150405Z") + ".backup"
	h := c.Writer.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Cache-Control", "no-store")
	c.Writer.WriteHeader(http.StatusOK)
	if _, err := io.Copy(c.Writer, f); err != nil {
		s.log.Warn("backup: the client stopped reading", "err", err)
	}
}
