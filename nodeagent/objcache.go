package nodeagent

import (
	"context"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// objectCache serves the configMaps and secrets that pods' volumes read from one watch per
// object, as the kubelet's watch-based configMap and secret managers do: a hundred pods
// mounting their namespace's kube-root-ca.crt cost one list and one watch, not a hundred
// GETs at start (each waiting its turn in the agent's client rate limit) and another
// hundred at every volume refresh. An object is watched while a pod references it.
type objectCache struct {
	client kubernetes.Interface

	mu    sync.Mutex
	ctx   context.Context // bounds every watch; nil until start, when reads go to the API
	items map[objectKey]*cachedObject
}

type objectKey struct {
	resource string // "configmaps" or "secrets"
	ns, name string
}

type cachedObject struct {
	refs   map[types.UID]bool
	store  cache.Store
	listed chan struct{} // closed once the first list is in store
	stop   context.CancelFunc
}

// listedStore closes listed after the reflector's first Replace: from then on the store
// answers for the object, present or not.
type listedStore struct {
	cache.Store
	once   sync.Once
	listed chan struct{}
}

func (s *listedStore) Replace(list []any, rv string) error {
	err := s.Store.Replace(list, rv)
	s.once.Do(func() { close(s.listed) })
	return err
}

// objectCacheWait bounds how long a read waits for an object's first list before it reads
// the object directly instead (a watch that cannot start must not hold a pod back).
const objectCacheWait = 5 * time.Second

func newObjectCache(client kubernetes.Interface) *objectCache {
	return &objectCache{client: client, items: map[objectKey]*cachedObject{}}
}

// start lets reads start watches, which last until ctx ends.
func (c *objectCache) start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ctx = ctx
}

// configMap returns the configMap as the watch last saw it, on behalf of pod uid.
func (c *objectCache) configMap(ctx context.Context, uid types.UID, ns, name string) (*corev1.ConfigMap, error) {
	obj, err := c.get(ctx, uid, objectKey{"configmaps", ns, name})
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.ConfigMap), nil
}

// secret returns the secret as the watch last saw it, on behalf of pod uid.
func (c *objectCache) secret(ctx context.Context, uid types.UID, ns, name string) (*corev1.Secret, error) {
	obj, err := c.get(ctx, uid, objectKey{"secrets", ns, name})
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Secret), nil
}

func (c *objectCache) get(ctx context.Context, uid types.UID, k objectKey) (runtime.Object, error) {
	item := c.reference(uid, k)
	if item == nil {
		return c.read(ctx, k)
	}
	select {
	case <-item.listed:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(objectCacheWait):
		return c.read(ctx, k)
	}
	obj, ok, err := item.store.GetByKey(k.ns + "/" + k.name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: k.resource}, k.name)
	}
	return obj.(runtime.Object), nil
}

// read gets the object from the API, bypassing the cache.
func (c *objectCache) read(ctx context.Context, k objectKey) (runtime.Object, error) {
	if k.resource == "secrets" {
		return c.client.CoreV1().Secrets(k.ns).Get(ctx, k.name, metav1.GetOptions{})
	}
	return c.client.CoreV1().ConfigMaps(k.ns).Get(ctx, k.name, metav1.GetOptions{})
}

// reference records that pod uid reads k and starts k's watch if it has none; nil before
// start.
func (c *objectCache) reference(uid types.UID, k objectKey) *cachedObject {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		return nil
	}
	if item := c.items[k]; item != nil {
		item.refs[uid] = true
		return item
	}
	ctx, stop := context.WithCancel(c.ctx)
	store := &listedStore{Store: cache.NewStore(cache.MetaNamespaceKeyFunc), listed: make(chan struct{})}
	item := &cachedObject{refs: map[types.UID]bool{uid: true}, store: store, listed: store.listed, stop: stop}
	c.items[k] = item
	var expected runtime.Object = &corev1.ConfigMap{}
	if k.resource == "secrets" {
		expected = &corev1.Secret{}
	}
	r := cache.NewReflector(c.listWatch(k), expected, store, 0)
	go r.RunWithContext(ctx)
	return item
}

// listWatch lists and watches the one object k names.
func (c *objectCache) listWatch(k objectKey) cache.ListerWatcher {
	if k.resource == "secrets" {
		return listWatchOne(c.client.CoreV1().Secrets(k.ns), k.name)
	}
	return listWatchOne(c.client.CoreV1().ConfigMaps(k.ns), k.name)
}

// listWatchOne is a ListerWatcher of the one object called name that api serves.
func listWatchOne[L runtime.Object](api interface {
	List(context.Context, metav1.ListOptions) (L, error)
	Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
}, name string) cache.ListerWatcher {
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return api.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return api.Watch(ctx, o)
		},
	}
}

// release drops pod uid's references; objects no pod references any more stop being
// watched.
func (c *objectCache) release(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, item := range c.items {
		if !item.refs[uid] {
			continue
		}
		delete(item.refs, uid)
		if len(item.refs) == 0 {
			item.stop()
			delete(c.items, k)
		}
	}
}

// tokenCache keeps each pod's service account tokens while they are fresh: the kubelet's
// token manager rotates a token once it is older than 80 % of its lifetime or than 24
// hours, and serves the one it has until then.
type tokenCache struct {
	mu     sync.Mutex
	tokens map[tokenKey]cachedToken
}

// tokenKey is what a token request asks for: its pod, service account, audience and
// lifetime.
type tokenKey struct {
	uid               types.UID
	sa, audience      string
	expirationSeconds int64
}

type cachedToken struct {
	tr      *authenticationv1.TokenRequest
	renewAt time.Time
}

func newTokenCache() *tokenCache { return &tokenCache{tokens: map[tokenKey]cachedToken{}} }

// get returns the cached token for k if it needs no rotation at now, else nil.
func (c *tokenCache) get(k tokenKey, now time.Time) *authenticationv1.TokenRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tokens[k]
	if !ok || !now.Before(t.renewAt) {
		return nil
	}
	return t.tr
}

// put records a token obtained at now.
func (c *tokenCache) put(k tokenKey, tr *authenticationv1.TokenRequest, now time.Time) {
	exp := tr.Status.ExpirationTimestamp.Time
	if exp.IsZero() || !exp.After(now) {
		return // no lifetime to go by: ask again next time
	}
	renew := now.Add(exp.Sub(now) * 8 / 10)
	if limit := now.Add(24 * time.Hour); renew.After(limit) {
		renew = limit
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens[k] = cachedToken{tr: tr, renewAt: renew}
}

// forget drops pod uid's tokens.
func (c *tokenCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.tokens {
		if k.uid == uid {
			delete(c.tokens, k)
		}
	}
}
