package apiserver

import (
	"slices"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/raftstore"
)

// selectorCache remembers, per stored key, what label and field selectors see of the
// object at one revision, so that a filtered list decodes only the objects it returns.
// Every node agent lists and watch-lists its pods by spec.nodeName, again whenever its
// watch restarts; decoding every pod of the cluster for each of those made a list cost
// O(pods) decodes, and with 5,000 agents the servers spent their time and memory there and
// fell over. kube-apiserver's watch cache keeps the same view (with the whole decoded
// object) and indexes pods by node name.
type selectorCache struct {
	// m is a *sync.Map of key -> selectorView, replaced whole when it grows past
	// selectorCacheMax. Reads take no lock: a store list consults the cache for every key
	// while holding the store's read lock, and a mutex here (with writers from concurrent
	// lists and the watch hubs queued on it) held that lock long enough to stall every
	// write behind it at 5,000 nodes.
	m    atomic.Pointer[sync.Map]
	size atomic.Int64 // keys added to m, roughly

	names  map[string]int // the resource's selectable fields, each a place in a fieldView
	labels labelSets
}

// selectorView is an object's labels and selectable fields at revision rev.
type selectorView struct {
	rev    int64
	labels labels.Set
	fields fieldView
}

// fieldView is an object's selectable fields, fields.Fields for selectors: the values in
// the places its resource's names give them. Every server keeps a view of each object it
// has listed or watched (30,000 pods: 30,000 views), and a map for each (ten fields of a
// pod) cost about 700 bytes, 21 MB a server; this is a slice of strings.
type fieldView struct {
	names map[string]int // shared by the resource's views
	vals  []string
	extra fields.Set // fields not in names (none, when a resource's Fields always sets the same ones)
}

// Has is part of fields.Fields.
func (f fieldView) Has(field string) bool {
	if _, ok := f.names[field]; ok {
		return true
	}
	_, ok := f.extra[field]
	return ok
}

// Get is part of fields.Fields.
func (f fieldView) Get(field string) string {
	if i, ok := f.names[field]; ok {
		return f.vals[i]
	}
	return f.extra[field]
}

// labelSets hands out one copy of each set of labels the views hold: a Deployment's pods
// carry the same labels, and each decoded pod has a map of its own (about 400 bytes with
// its strings). A table of at most labelSetsMax sets, emptied when full. Views are only
// read, never changed, so sharing is safe.
type labelSets struct {
	mu   sync.Mutex
	sets map[string]labels.Set
}

const labelSetsMax = 4096

func (t *labelSets) share(l map[string]string) labels.Set {
	if len(l) == 0 {
		return nil
	}
	k := labels.Set(l).String()
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.sets[k]; ok {
		return s
	}
	if t.sets == nil || len(t.sets) >= labelSetsMax {
		t.sets = make(map[string]labels.Set)
	}
	t.sets[k] = l
	return l
}

// newSelectorCache is a resource's cache; names are the fields its Fields function sets.
func newSelectorCache(fieldNames fields.Set) *selectorCache {
	names := make([]string, 0, len(fieldNames))
	for f := range fieldNames {
		names = append(names, f)
	}
	slices.Sort(names)
	c := &selectorCache{names: make(map[string]int, len(names))}
	for i, f := range names {
		c.names[f] = i
	}
	return c
}

// view is what selectors see of an object with these labels and fields at rev.
func (c *selectorCache) view(rev int64, l map[string]string, set fields.Set) selectorView {
	f := fieldView{names: c.names, vals: make([]string, len(c.names))}
	for k, v := range set {
		if i, ok := c.names[k]; ok {
			f.vals[i] = v
			continue
		}
		if f.extra == nil {
			f.extra = fields.Set{}
		}
		f.extra[k] = v
	}
	return selectorView{rev: rev, labels: c.labels.share(l), fields: f}
}

// selectorCacheMax bounds a resource's cache: past it the cache starts afresh (views of
// deleted keys are otherwise dropped only when a watch hub sees the delete).
const selectorCacheMax = 1 << 18

func (c *selectorCache) get(key string, rev int64) (selectorView, bool) {
	m := c.m.Load()
	if m == nil {
		return selectorView{}, false
	}
	v, ok := m.Load(key)
	if !ok {
		return selectorView{}, false
	}
	sv := v.(selectorView)
	return sv, sv.rev == rev
}

// put records a view. A racing put of an older revision may win; that only costs a
// decode later, since get answers only for the exact revision.
func (c *selectorCache) put(key string, v selectorView) {
	m := c.m.Load()
	if m == nil || c.size.Load() >= selectorCacheMax {
		m = new(sync.Map)
		c.m.Store(m)
		c.size.Store(0)
	}
	if _, loaded := m.Swap(key, v); !loaded {
		c.size.Add(1)
	}
}

func (c *selectorCache) forget(key string, rev int64) {
	m := c.m.Load()
	if m == nil {
		return
	}
	// A put of a newer revision racing this delete may be lost: a miss, not a wrong view.
	if v, ok := m.Load(key); ok && v.(selectorView).rev <= rev {
		if _, loaded := m.LoadAndDelete(key); loaded {
			c.size.Add(-1)
		}
	}
}

// selectorCacheOf is the server's cache for a resource.
func (s *Server) selectorCacheOf(rs *Resource) *selectorCache {
	if c, ok := s.selCaches.Load(rs); ok {
		return c.(*selectorCache)
	}
	c, _ := s.selCaches.LoadOrStore(rs, newSelectorCache(s.fieldSet(rs, rs.newObject(s.codecs))))
	return c.(*selectorCache)
}

// viewOf is what selectors see of obj.
func (s *Server) viewOf(rs *Resource, rev int64, obj runtime.Object) selectorView {
	var l map[string]string
	if m, err := meta.Accessor(obj); err == nil {
		l = m.GetLabels()
	}
	return s.selectorCacheOf(rs).view(rev, l, s.fieldSet(rs, obj))
}

// selects says whether sel picks the stored object kv. It decodes kv only when the cache
// has no view of this revision; obj is then the decoded object (nil when not decoded).
func (s *Server) selects(rs *Resource, sel *selector, kv raftstore.KV) (ok bool, obj runtime.Object, err error) {
	if sel.everything() {
		return true, nil, nil
	}
	c := s.selectorCacheOf(rs)
	v, hit := c.get(kv.Key, kv.ModRevision)
	if !hit {
		if obj, err = s.objs.decode(kv); err != nil {
			return false, nil, err
		}
		v = s.viewOf(rs, kv.ModRevision, obj)
		c.put(kv.Key, v)
	}
	return sel.picks(v.labels, v.fields), obj, nil
}

// skipUnselected is a store list's Skip for sel: it leaves out the keys whose cached view
// at their revision sel does not pick, so that a filtered list of a large resource holds
// only what may match (at 5,000 nodes, concurrent agents' lists of all pods held 2.7 GB
// of copied keys on one server). Unknown keys are kept, to be decoded and checked outside
// the store's lock. Nil when sel picks everything.
func (s *Server) skipUnselected(rs *Resource, sel *selector) func(string, int64) bool {
	if sel == nil || sel.everything() {
		return nil
	}
	c := s.selectorCacheOf(rs)
	return func(key string, rev int64) bool {
		v, hit := c.get(key, rev)
		return hit && !sel.picks(v.labels, v.fields)
	}
}
