package licenses

import (
	"context"
	"fmt"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store"
)

// KeysPerImportedLicense is what one imported license costs a transaction:
// its record, its key index and its audit record.
const KeysPerImportedLicense = 3

// MaxImport returns the most licenses one Import may create on this
// store: all of them go in one transaction, whose size the store bounds
// (about 5,000 on bbolt, about 40 on etcd's default limit).
func (s *Service) MaxImport() int {
	return (s.db.MaxTxnOps() - 1) / KeysPerImportedLicense // the audit sequence counts once
}

// Imported is one license an import created, with its key (shown once).
type Imported struct {
	License License `json:"license"`
	Key     string  `json:"key"`
}

// RowError names a refused row of an import, counted from 1.
type RowError struct {
	Row     int    `json:"row"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Import creates every license of ls, or none: each is validated as Create
// validates it (its products must exist) and every refused row is named;
// then all are written in one transaction, with their audit records. With
// dryRun nothing is written and the answer is empty. More licenses than
// MaxImport are refused as a whole (split the file).
func (s *Service) Import(ctx context.Context, ls []License, dryRun bool) ([]Imported, error) {
	if len(ls) == 0 {
		return nil, portal.Errorf(portal.EInvalid, "licenses: nothing to import")
	}
	if n := s.MaxImport(); len(ls) > n {
		return nil, portal.Errorf(portal.EInvalid, "an import creates at most %d licenses at once on this store, not %d: split the file", n, len(ls))
	}
	var bad []RowError
	for i := range ls {
		l := &ls[i]
		err := l.Validate()
		if err == nil {
			err = s.checkProducts(ctx, l.Products)
		}
		if err != nil {
			bad = append(bad, RowError{Row: i + 1, Code: portal.ErrorCode(err), Message: portal.ErrorMessage(err)})
		}
	}
	if len(bad) > 0 {
		msg := fmt.Sprintf("row %d: %s", bad[0].Row, bad[0].Message)
		if len(bad) > 1 {
			msg += fmt.Sprintf(" (and %d more rows)", len(bad)-1)
		}
		return nil, &portal.Error{Code: portal.EInvalid, Message: "nothing was imported: " + msg, Details: map[string]any{"rows": bad}}
	}
	if dryRun {
		return nil, nil
	}
	now := s.now().UTC().Truncate(time.Second)
	out := make([]Imported, len(ls))
	for i, l := range ls {
		key := secret.New(KeyPrefix)
		l.ID = newID()
		l.Status = Active
		l.CreatedAt, l.UpdatedAt = now, now
		l.KeyHint = secret.Hint(key)
		l.KeyDigest = secret.Digest(key)
		out[i] = Imported{License: l, Key: key}
	}
	err := s.db.Update(ctx, func(tx store.Tx) error {
		for _, im := range out {
			if err := putNew(ctx, tx, im.License); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("licenses: import: %w", err)
	}
	for i := range out {
		s.keys.Add(out[i].License.KeyDigest)
		out[i].License = out[i].License.Public()
	}
	return out, nil
}
