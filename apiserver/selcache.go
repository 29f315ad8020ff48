package apiserver

import (
	"sync"

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
	mu sync.RWMutex
	m  map[string]selectorView
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
	c.mu.RLock()
	v, ok := c.m[key]
	c.mu.RUnlock()
	return v, ok && v.rev == rev
}

func (c *selectorCache) put(key string, v selectorView) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= selectorCacheMax {
		c.m = make(map[string]selectorView)
	}
	if old, ok := c.m[key]; !ok || old.rev <= v.rev {
		c.m[key] = v
	}
	c.mu.Unlock()
}

func (c *selectorCache) forget(key string, rev int64) {
	c.mu.Lock()
	if old, ok := c.m[key]; ok && old.rev <= rev {
		delete(c.m, key)
	}
	c.mu.Unlock()
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
	if sel.labels.Empty() && sel.fields.Empty() {
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
	return sel.labels.Matches(v.labels) && sel.fields.Matches(v.fields), obj, nil
}

// skipUnselected is a store list's Skip for sel: it leaves out the keys whose cached view
// at their revision sel does not pick, so that a filtered list of a large resource holds
// only what may match (at 5,000 nodes, concurrent agents' lists of all pods held 2.7 GB
// of copied keys on one server). Unknown keys are kept, to be decoded and checked outside
// the store's lock. Nil when sel picks everything.
func (s *Server) skipUnselected(rs *Resource, sel *selector) func(string, int64) bool {
	if sel == nil || (sel.labels.Empty() && sel.fields.Empty()) {
		return nil
	}
	c := s.selectorCacheOf(rs)
	return func(key string, rev int64) bool {
		v, hit := c.get(key, rev)
		return hit && !(sel.labels.Matches(v.labels) && sel.fields.Matches(v.fields))
	}
}
