package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/portaldist/portal/store"
)

// The grant log and its index by license (see "Key layout" in the package
// documentation).
const (
	logPrefix   = "led/g/"
	indexPrefix = "led/i/"
	// rangePrefix lists the indexed ranges of the log: led/r/<last seq>.
	rangePrefix = "led/r/"
	// watermarkKey holds the log sequence up to which the index is written.
	watermarkKey = "led/w"
	// targetKey holds the end of the range a rollup is indexing in several
	// transactions (see rollup).
	targetKey = "led/wt"
	// oldPrefix is the layout before the log: one key per grant under its
	// license. Still read by ByLicense and deleted by Purge; never written.
	oldPrefix = "led/l/"
)

// Rollup limits: one range of the log holds at most maxRollupSeqs grants
// (8 bytes each in the index: 256 KiB at most, spread over the range's
// transactions, well under etcd's request size limit), and one Flush runs at
// most about maxRollupTxns index transactions, leaving the rest of a long
// tail to the next one.
const (
	maxRollupSeqs = 32768
	maxRollupTxns = 64
)

func logKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(logPrefix), seq)
}

// indexKey names the list of license's grants in the rollup range that
// ends with seq end. A range's keys share a prefix that sorts after every
// older range's, so a rollup appends.
func indexKey(end uint64, license string) []byte {
	k := binary.BigEndian.AppendUint64([]byte(indexPrefix), end)
	return append(append(k, '/'), seg(license)...)
}

func rangeKey(end uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(rangePrefix), end)
}

func oldLicensePrefix(license string) string { return oldPrefix + seg(license) + "/" }

var licenseField = []byte(`"license":`)

// licenseOf returns the license of a grant as stored in the log (its JSON)
// without decoding the rest. The key "license" is found by its bytes: a
// quote inside a JSON string is always escaped, so `"license":` can only be
// the field itself.
func licenseOf(v []byte) (string, error) {
	i := bytes.Index(v, licenseField)
	if i < 0 {
		return "", nil // omitted: an open product's grant
	}
	rest := v[i+len(licenseField):]
	if len(rest) == 0 || rest[0] != '"' {
		return "", fmt.Errorf("ledger: grant license is not a string")
	}
	end := 1
	for end < len(rest) && rest[end] != '"' {
		if rest[end] == '\\' {
			end++
		}
		end++
	}
	if end >= len(rest) {
		return "", fmt.Errorf("ledger: grant license is not a string")
	}
	raw := rest[:end+1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1:end]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("ledger: grant license: %w", err)
	}
	return s, nil
}

// rollupDue says whether Flush should index the log now. The caller holds
// flushMu.
func (l *Ledger) rollupDue() bool {
	return l.sinceRollup >= l.rollupGrants ||
		l.rollupInterval > 0 && l.sinceRollup > 0 && time.Since(l.lastRollup) >= l.rollupInterval
}

var errWatermarkMoved = errors.New("ledger: the index was extended meanwhile")

// rollup indexes the grants logged since the watermark by license. A round
// takes the next range of the log (at most maxRollupSeqs grants) and writes,
// for each license in it, one key led/i/<range end>/<license> listing its
// grants' sequences, then the range (led/r/<range end>) and the watermark,
// the range's end. All of a range's keys sort after the older ranges', so
// the writes append. When the
// range names more licenses than one transaction may write, the round first
// records the range's end in led/wt, then writes the keys in as many
// transactions as it takes, then moves the watermark; a round interrupted
// there is finished by the next one from led/wt, and writes the same keys
// again (a range's keys depend on the range alone), never a second list.
//
// Every replica may run it. Each transaction checks that the watermark and
// led/wt are still what the round read; when another replica moved them it
// writes nothing, and the next round starts from where that one got. The
// caller holds flushMu.
func (l *Ledger) rollup(ctx context.Context) error {
	maxKeys := l.db.MaxTxnOps() - 3 // room for the watermark, led/wt and the range
	drained := false
	txns := 0
	for txns < maxRollupTxns {
		var (
			from, target, to uint64
			lists            map[string][]uint64
			n                int
		)
		err := l.db.View(ctx, func(tx store.Tx) error {
			var err error
			if from, err = getUint64(tx, []byte(watermarkKey)); err != nil {
				return err
			}
			if target, err = getUint64(tx, []byte(targetKey)); err != nil {
				return err
			}
			to, lists, n = from, map[string][]uint64{}, 0
			return tx.Scan([]byte(logPrefix), store.ScanOptions{After: logKey(from)}, func(k, v []byte) (bool, error) {
				if len(k) != len(logPrefix)+8 {
					return true, nil
				}
				seq := binary.BigEndian.Uint64(k[len(logPrefix):])
				if target > from && seq > target || target <= from && n == maxRollupSeqs {
					return false, nil
				}
				lic, err := licenseOf(v)
				if err != nil {
					return false, fmt.Errorf("grant %d: %w", seq, err)
				}
				lists[lic] = append(lists[lic], seq)
				to, n = seq, n+1
				return true, nil
			})
		})
		if err != nil {
			return fmt.Errorf("ledger: index the log: %w", err)
		}
		if target > from {
			to = target // the range an interrupted round recorded
		}
		if to == from {
			drained = true
			break
		}
		keys := make([]string, 0, len(lists))
		for lic := range lists {
			keys = append(keys, lic)
		}
		slices.Sort(keys)
		// check makes a transaction write nothing unless the watermark and
		// led/wt are as expected.
		check := func(tx store.Tx, wantTarget uint64) error {
			w, err := getUint64(tx, []byte(watermarkKey))
			if err != nil {
				return err
			}
			t, err := getUint64(tx, []byte(targetKey))
			if err != nil {
				return err
			}
			if w != from || t != wantTarget {
				return errWatermarkMoved
			}
			return nil
		}
		put := func(tx store.Tx, lics []string) error {
			for _, lic := range lics {
				seqs := lists[lic]
				v := make([]byte, 0, 8*len(seqs))
				for _, s := range seqs {
					v = binary.BigEndian.AppendUint64(v, s)
				}
				if err := tx.Put(indexKey(to, lic), v); err != nil {
					return err
				}
			}
			return nil
		}
		finish := func(tx store.Tx) error {
			if err := tx.Put([]byte(watermarkKey), binary.BigEndian.AppendUint64(nil, to)); err != nil {
				return err
			}
			if err := tx.Put(rangeKey(to), nil); err != nil {
				return err
			}
			return tx.Delete([]byte(targetKey))
		}
		if len(keys) <= maxKeys && target <= from {
			// One transaction: the keys and the watermark.
			txns++
			err = l.db.Update(ctx, func(tx store.Tx) error {
				if err := check(tx, target); err != nil {
					return err
				}
				if err := put(tx, keys); err != nil {
					return err
				}
				return finish(tx)
			})
		} else {
			if target <= from {
				txns++
				err = l.db.Update(ctx, func(tx store.Tx) error {
					if err := check(tx, target); err != nil {
						return err
					}
					return tx.Put([]byte(targetKey), binary.BigEndian.AppendUint64(nil, to))
				})
			}
			for len(keys) > 0 && err == nil {
				part := keys[:min(len(keys), maxKeys)]
				keys = keys[len(part):]
				txns++
				err = l.db.Update(ctx, func(tx store.Tx) error {
					if err := check(tx, to); err != nil {
						return err
					}
					return put(tx, part)
				})
			}
			if err == nil {
				txns++
				err = l.db.Update(ctx, func(tx store.Tx) error {
					if err := check(tx, to); err != nil {
						return err
					}
					return finish(tx)
				})
			}
		}
		if errors.Is(err, errWatermarkMoved) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ledger: index the log: %w", err)
		}
		l.indexed.Add(uint64(n))
	}
	l.lastRollup = time.Now()
	if drained {
		l.sinceRollup = 0
	} // else the next Flush goes on with the rest of the tail
	return nil
}
