package raftstore

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
)

// continueToken is what a list page hands back: the revision of the first page and the key
// to resume from, so every page reads the same consistent state.
type continueToken struct {
	Rev   int64  `json:"rev"`
	Start string `json:"start"`
}

func encodeContinue(rev int64, start string) string {
	b, _ := json.Marshal(continueToken{Rev: rev, Start: start})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.Rev <= 0 {
		return t, fmt.Errorf("%w: malformed continue token", ErrInvalid)
	}
	return t, nil
}

// prefixEnd is the first key after every key with the prefix ("" means no end).
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// list reads keys with the prefix, from start on, as they were at revision rev (zero: now).
// A past revision is rebuilt by undoing, key by key, the history's events after it.
func (f *fsm) list(prefix, start string, rev int64, limit int, skip func(string, int64) bool) (ListResult, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if rev == 0 {
		rev = f.rev
	}
	if rev > f.rev {
		return ListResult{}, fmt.Errorf("%w: revision %d is ahead of the store's %d", ErrInvalid, rev, f.rev)
	}
	if oldest := f.hist.floor(prefix); rev < oldest {
		return ListResult{}, &CompactedError{Requested: rev, Oldest: oldest}
	}
	if start < prefix {
		start = prefix
	}
	end := prefixEnd(prefix)
	inRange := func(k string) bool { return k >= start && (end == "" || k < end) }

	// overlay holds, for keys changed after rev, their state at rev (nil: absent then).
	var overlay map[string]*KV
	var overlayKeys []string
	if rev < f.rev {
		overlay = make(map[string]*KV)
		for seq := f.hist.head(); seq > f.hist.seqAfter(rev); seq-- {
			ev := f.hist.at(seq - 1)
			if inRange(ev.KV.Key) {
				overlay[ev.KV.Key] = ev.Prev // walking backwards: the oldest change wins
			}
		}
		for k := range overlay {
			overlayKeys = append(overlayKeys, k)
		}
		sort.Strings(overlayKeys)
	}

	res := ListResult{Revision: rev}
	var last string
	full := func() bool { return limit > 0 && len(res.KVs) == limit }
	more := false
	emit := func(kv *KV) bool {
		if skip != nil && skip(kv.Key, kv.ModRevision) {
			return true
		}
		if full() {
			more = true
			return false
		}
		res.KVs = append(res.KVs, *kv)
		last = kv.Key
		return true
	}
	oi := 0
	// flushOverlay emits overlay-only keys (deleted since rev) that sort before key.
	flushOverlay := func(key string, bounded bool) bool {
		for oi < len(overlayKeys) && (!bounded || overlayKeys[oi] < key) {
			k := overlayKeys[oi]
			oi++
			if kv := overlay[k]; kv != nil {
				if _, inTree := f.tree.Get(&KV{Key: k}); !inTree && !emit(kv) {
					return false
				}
			}
		}
		return true
	}
	visit := func(kv *KV) bool {
		if !flushOverlay(kv.Key, true) {
			return false
		}
		if overlay != nil {
			if old, changed := overlay[kv.Key]; changed {
				if old == nil {
					return true // created after rev
				}
				kv = old
			}
		}
		return emit(kv)
	}
	if end == "" {
		f.tree.AscendGreaterOrEqual(&KV{Key: start}, visit)
	} else {
		f.tree.AscendRange(&KV{Key: start}, &KV{Key: end}, visit)
	}
	if !more {
		flushOverlay("", false)
	}
	if more {
		res.Continue = encodeContinue(rev, last+"\x00")
	}
	return res, nil
}
