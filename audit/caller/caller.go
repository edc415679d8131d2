// Package caller derives the audit actor from the access.Caller that a door
// authenticated. It is a package of its own because the domain services
// that call audit.Write (licenses, tokens, releases) are imported by
// package access: package audit cannot import access without a cycle.
//
// A door that authenticates a request calls NewContext instead of
// access.NewContext, so the caller and the audit actor are set together
// and cannot disagree.
package caller

import (
	"context"

	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/audit"
)

// Actor returns the audit actor of c: an admin or publisher token's id and
// name, a license's id, or an anonymous actor.
func Actor(c access.Caller) audit.Actor {
	if t := c.Token(); t != nil {
		kind := audit.KindPublisher
		if c.Role() == access.Admin {
			kind = audit.KindAdmin
		}
		return audit.Actor{Kind: kind, ID: t.ID, Name: t.Name}
	}
	if l := c.License(); l != nil {
		return audit.Actor{Kind: audit.KindLicense, ID: l.ID}
	}
	return audit.Actor{Kind: audit.KindAnonymous}
}

// NewContext returns ctx carrying c (access.NewContext) and c's audit actor
// (audit.WithActor), replacing any actor ctx carried.
func NewContext(ctx context.Context, c access.Caller) context.Context {
	return audit.WithActor(access.NewContext(ctx, c), Actor(c))
}
