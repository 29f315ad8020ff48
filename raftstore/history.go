package raftstore

import "sort"

// history is the bounded, ordered log of recent events. Each event has a sequence number
// (its position since the store started) so that watchers can keep a cursor that survives
// trimming. Revisions are dropped whole: a transaction's events go together.
type history struct {
	events  []Event
	start   int    // events[start:] are live; the prefix waits to be reclaimed
	base    uint64 // sequence number of events[start]
	compact int64  // events of revisions at or below this are gone
	bytes   int64  // of the keys and values the live events hold (eventBytes)
	// dropped holds, per key class (historyClass), the newest revision of an event of that
	// class that was trimmed; restored is the revision a snapshot reset the history to.
	// A watch or past list of a prefix within one class needs only that class's events,
	// so it can start below compact: a quiet resource keeps its window while a busy one
	// churns the shared history, as kube-apiserver's per-resource watch caches do.
	dropped  map[string]int64
	restored int64
}

// historyClass is the class of a key or prefix: its first three '/'-separated segments
// ("/registry/pods/"), the resource of an apiserver key. A prefix of fewer segments has none.
func historyClass(key string) (string, bool) {
	n := 0
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			if n++; n == 3 {
				return key[:i+1], true
			}
		}
	}
	return "", false
}

// floor is the revision at or above which every event of keys under prefix is still held:
// a watch may start there, a list may be rebuilt there.
func (h *history) floor(prefix string) int64 {
	if c, ok := historyClass(prefix); ok {
		return max(h.restored, h.dropped[c])
	}
	return h.compact
}

// eventBytes is what an event keeps alive: its key and the value it wrote, or for a delete
// the value it removed (no longer in the tree; a put's previous value is the value of an
// earlier event, counted there).
func eventBytes(ev *Event) int64 {
	if ev.Type == EventDelete && ev.Prev != nil {
		return int64(len(ev.KV.Key) + len(ev.Prev.Value))
	}
	return int64(len(ev.KV.Key) + len(ev.KV.Value))
}

func (h *history) len() int { return len(h.events) - h.start }

// head is the sequence number the next event will get.
func (h *history) head() uint64 { return h.base + uint64(h.len()) }

func (h *history) append(ev Event) {
	h.events = append(h.events, ev)
	h.bytes += eventBytes(&ev)
}

// at returns the event with sequence number seq, which must be in [base, head).
func (h *history) at(seq uint64) *Event { return &h.events[h.start+int(seq-h.base)] }

// dropRevision removes every event of the oldest revision and returns that revision.
func (h *history) dropRevision() int64 {
	rev := h.events[h.start].Revision
	for h.len() > 0 && h.events[h.start].Revision == rev {
		if c, ok := historyClass(h.events[h.start].KV.Key); ok {
			if h.dropped == nil {
				h.dropped = make(map[string]int64)
			}
			h.dropped[c] = rev
		}
		h.bytes -= eventBytes(&h.events[h.start])
		h.events[h.start] = Event{} // let the values be collected
		h.start++
		h.base++
	}
	// Reclaim the dead prefix once it is the larger part of the slice.
	if h.start > 1024 && h.start > len(h.events)/2 {
		n := copy(h.events, h.events[h.start:])
		clear(h.events[n:])
		h.events = h.events[:n]
		h.start = 0
	}
	return rev
}

// seqAfter returns the sequence number of the first event with a revision above rev.
func (h *history) seqAfter(rev int64) uint64 {
	live := h.events[h.start:]
	i := sort.Search(len(live), func(i int) bool { return live[i].Revision > rev })
	return h.base + uint64(i)
}

// reset empties the history after a snapshot replaced the state at revision rev. Sequence
// numbers keep counting so that old cursors can tell they were cut off.
func (h *history) reset(rev int64) {
	h.base = h.head()
	h.events = nil
	h.start = 0
	h.bytes = 0
	h.compact = rev
	h.restored = rev
	h.dropped = nil
}
