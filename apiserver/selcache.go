package apiserver

import (
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
}

// selectorView is an object's labels and selectable fields at revision rev.
type selectorView struct {
	rev    int64
	labels labels.Set
	fields fields.Set
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
	c, _ := s.selCaches.LoadOrStore(rs, &selectorCache{})
	return c.(*selectorCache)
}

// viewOf is what selectors see of obj.
func (s *Server) viewOf(rs *Resource, rev int64, obj runtime.Object) selectorView {
	v := selectorView{rev: rev, fields: s.fieldSet(rs, obj)}
	if m, err := meta.Accessor(obj); err == nil {
		v.labels = m.GetLabels()
	}
	return v
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
