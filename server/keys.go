package server

import (
	"context"
	"fmt"

	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

// ProductKeys makes, seals and opens the products' Ed25519 signing keys,
// which are stored sealed on the product record (see signing.Sealer: bound
// to the product's slug, encrypted when a master key is configured).
type ProductKeys struct {
	Catalog *releases.Service
	// Sealer nil stores keys unencrypted, protected by the data
	// directory's permissions.
	Sealer *signing.Sealer
}

func (k ProductKeys) sealer() *signing.Sealer {
	if k.Sealer == nil {
		sl, _ := signing.NewSealer(nil)
		return sl
	}
	return k.Sealer
}

// New makes a key for the product and returns it sealed for storage.
func (k ProductKeys) New(slug string) ([]byte, error) {
	key, err := signing.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("server: signing key: %w", err)
	}
	return k.sealer().For(slug).Seal(key)
}

// SigningKey opens the sealed signing key of a product.
func (k ProductKeys) SigningKey(ctx context.Context, product string) (*signing.Key, error) {
	p, err := k.Catalog.Product(ctx, product)
	if err != nil {
		return nil, err
	}
	if len(p.SigningKey) == 0 {
		return nil, fmt.Errorf("server: product %s has no signing key", product)
	}
	return k.sealer().For(product).Open(p.SigningKey)
}
