package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal/releases"
)

func (s *Server) addArtifact(c *gin.Context) {
	slug, ver := c.Param("product"), c.Param("version")
	if err := caller(c).MayPublish(slug); err != nil {
		s.fail(c, err)
		return
	}
	var in struct {
		Filename string `json:"filename"`
		Platform string `json:"platform"`
		Arch     string `json:"arch"`
		Size     int64  `json:"size"`
		SHA256   string `json:"sha256"`
		// Signature is an optional publisher-made Sparkle EdDSA signature
		// (base64), used for files too large for the portal to sign.
		Signature string `json:"sparkle_signature"`
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	a, up, err := s.Publishing.AddArtifact(c, slug, ver, releases.NewArtifact{
		Filename: in.Filename, Platform: in.Platform, Arch: in.Arch, Size: in.Size, SHA256: in.SHA256,
	}, in.Signature)
	if err != nil {
		s.fail(c, err)
		return
	}
	signedURLHeaders(c)
	c.PureJSON(http.StatusCreated, gin.H{"artifact": a.Public(), "upload": up})
}

func (s *Server) completeArtifact(c *gin.Context) {
	slug, ver := c.Param("product"), c.Param("version")
	if err := caller(c).MayPublish(slug); err != nil {
		s.fail(c, err)
		return
	}
	a, err := s.Publishing.Complete(c, slug, ver, c.Param("filename"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"artifact": a.Public()})
}

func (s *Server) deleteArtifact(c *gin.Context) {
	slug, ver := c.Param("product"), c.Param("version")
	if err := caller(c).MayPublish(slug); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.Publishing.DeleteArtifact(c, slug, ver, c.Param("filename")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// signedURLHeaders marks a response that carries a signed URL: never
// cached, and the URL never leaks through a Referer.
func signedURLHeaders(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Header("Referrer-Policy", "no-referrer")
}
