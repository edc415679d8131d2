package server

import (
	"context"
	"fmt"

	"github.com/portaldist/portal/signing"
)

// newSigningKey makes a product's Ed25519 key and seals it for storage,
// bound to the product's slug.
func (s *Server) newSigningKey(slug string) ([]byte, error) {
	k, err := signing.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("server: signing key: %w", err)
	}
	return s.sealer().For(slug).Seal(k)
}

func (s *Server) sealer() *signing.Sealer {
	if s.Sealer == nil {
		sl, _ := signing.NewSealer(nil)
		return sl
	}
	return s.Sealer
}

// SigningKey opens the sealed signing key of a product.
func (s *Server) SigningKey(ctx context.Context, product string) (*signing.Key, error) {
	p, err := s.catalog.Product(ctx, product)
	if err != nil {
		return nil, err
	}
	if len(p.SigningKey) == 0 {
		return nil, fmt.Errorf("server: product %s has no signing key", product)
	}
	return s.sealer().For(product).Open(p.SigningKey)
}
