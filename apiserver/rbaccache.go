package apiserver

import (
	"context"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/raftstore"
)

// rbacResources are what the authorizer reads on every request that is not system:masters.
var rbacResources = []string{"clusterrolebindings", "clusterroles", "rolebindings", "roles"}

// rbacCache is an informer over this node's replica of the RBAC objects: listed once, then
// kept current by a store watch, so that authorizing a request reads memory instead of
// listing and decoding every ClusterRoleBinding. Until every resource has been listed
// once, the authorizer reads the store as before.
type rbacCache struct {
	s      *Server
	mu     sync.RWMutex
	objs   map[string]map[string]map[string]runtime.Object // resource -> namespace ("" cluster) -> name
	synced map[string]bool
}

func newRBACCache(s *Server) *rbacCache {
	c := &rbacCache{s: s, objs: map[string]map[string]map[string]runtime.Object{}, synced: map[string]bool{}}
	for _, r := range rbacResources {
		c.objs[r] = map[string]map[string]runtime.Object{}
	}
	return c
}

// run keeps the cache current until ctx ends; one goroutine per resource.
func (c *rbacCache) run(ctx context.Context, wg *sync.WaitGroup) {
	for _, r := range rbacResources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				err := c.listWatch(ctx, r)
				c.mu.Lock()
				c.synced[r] = false // until re-listed: fall back to the store
				c.mu.Unlock()
				if ctx.Err() == nil {
					c.s.cfg.Logger.Debug("rbac cache re-list", "resource", r, "err", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
}

func (c *rbacCache) listWatch(ctx context.Context, resource string) error {
	rs := c.s.reg.lookup("rbac.authorization.k8s.io", "v1", resource)
	prefix := c.s.objs.prefix(rs, "")
	res, err := c.s.cfg.Store.List(ctx, prefix, raftstore.ListOptions{ReadOptions: raftstore.ReadOptions{Stale: true}})
	if err != nil {
		return err
	}
	fresh := map[string]map[string]runtime.Object{}
	for _, kv := range res.KVs {
		if obj, err := c.s.objs.decode(kv); err == nil {
			ns, name := splitKey(prefix, kv.Key)
			if fresh[ns] == nil {
				fresh[ns] = map[string]runtime.Object{}
			}
			fresh[ns][name] = obj
		}
	}
	w, err := c.s.cfg.Store.Watch(ctx, prefix, res.Revision)
	if err != nil {
		return err
	}
	defer w.Stop()
	c.mu.Lock()
	c.objs[resource], c.synced[resource] = fresh, true
	c.mu.Unlock()
	for ev := range w.Events() {
		ns, name := splitKey(prefix, ev.KV.Key)
		var obj runtime.Object
		if ev.Type == raftstore.EventPut {
			if obj, err = c.s.objs.decode(ev.KV); err != nil {
				continue
			}
		}
		c.mu.Lock()
		m := c.objs[resource]
		if obj == nil {
			delete(m[ns], name)
		} else {
			if m[ns] == nil {
				m[ns] = map[string]runtime.Object{}
			}
			m[ns][name] = obj
		}
		c.mu.Unlock()
	}
	return w.Err()
}

// splitKey reads namespace and name from a key under prefix ("<ns>/<name>" or "<name>").
func splitKey(prefix, key string) (ns, name string) {
	rest := strings.TrimPrefix(key, prefix)
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[:i], rest[i+1:]
	}
	return "", rest
}

// list returns the cached objects of a resource in ns, and whether the cache can answer.
// The objects are shared: callers only read them.
func (c *rbacCache) list(resource, ns string) ([]any, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.synced[resource] {
		return nil, false
	}
	m := c.objs[resource][ns]
	out := make([]any, 0, len(m))
	for _, o := range m {
		out = append(out, o)
	}
	return out, true
}

// get returns one cached object (nil if absent), and whether the cache can answer.
func (c *rbacCache) get(resource, ns, name string) (runtime.Object, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.synced[resource] {
		return nil, false
	}
	return c.objs[resource][ns][name], true
}
