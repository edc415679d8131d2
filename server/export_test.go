package server

import "github.com/gin-gonic/gin"

// RoutesOf lists the routes s registered, for tests that visit each.
func RoutesOf(s *Server) gin.RoutesInfo { return s.engine.Routes() }
