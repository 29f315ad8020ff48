package apiserver

import (
	"context"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/raftstore"
)

// objectStore maps Kubernetes objects onto store keys: /registry/<resource>/<namespace>/<name>
// (cluster-scoped: /registry/<resource>/<name>).
type objectStore struct {
	store  Store
	codecs *codecs
}

func (o *objectStore) prefix(rs *Resource, ns string) string {
	p := "/registry/" + rs.GVR.Resource + "/"
	if rs.Namespaced && ns != "" {
		p += ns + "/"
	}
	return p
}

func (o *objectStore) key(rs *Resource, ns, name string) string {
	if !rs.Namespaced {
		return "/registry/" + rs.GVR.Resource + "/" + name
	}
	return "/registry/" + rs.GVR.Resource + "/" + ns + "/" + name
}

// decode turns a stored value into an object with resourceVersion = its modify revision.
func (o *objectStore) decode(kv raftstore.KV) (runtime.Object, error) {
	obj, err := o.codecs.decodeStorage(kv.Value)
	if err != nil {
		return nil, err
	}
	setRV(obj, kv.ModRevision)
	return obj, nil
}

func setRV(obj runtime.Object, rev int64) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetResourceVersion(strconv.FormatInt(rev, 10))
	}
}

func (o *objectStore) encode(obj runtime.Object) ([]byte, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := m.GetResourceVersion()
	m.SetResourceVersion("")
	defer m.SetResourceVersion(rv)
	data, err := o.codecs.encodeStorage(obj)
	if err != nil {
		return nil, err
	}
	return data, sizeCheck(data)
}

// get reads one object; stale reads come from this node's replica.
func (o *objectStore) get(ctx context.Context, rs *Resource, ns, name string, stale bool) (runtime.Object, int64, error) {
	kv, err := o.store.Get(ctx, o.key(rs, ns, name), raftstore.ReadOptions{Stale: stale})
	if err != nil {
		return nil, 0, err
	}
	obj, err := o.decode(kv)
	return obj, kv.ModRevision, err
}

// create writes a new object, with any extra operations (its claims) in the same
// transaction.
func (o *objectStore) create(ctx context.Context, rs *Resource, obj runtime.Object, extra ...raftstore.Op) (runtime.Object, error) {
	m, _ := meta.Accessor(obj)
	data, err := o.encode(obj)
	if err != nil {
		return nil, err
	}
	res, err := o.store.Txn(ctx, append([]raftstore.Op{{Kind: raftstore.OpCreate, Key: o.key(rs, m.GetNamespace(), m.GetName()), Value: data}}, extra...)...)
	if err != nil {
		return nil, err
	}
	setRV(obj, res.Results[0].KV.ModRevision)
	return obj, nil
}

// update writes obj if the stored key is still at rev.
func (o *objectStore) update(ctx context.Context, rs *Resource, obj runtime.Object, rev int64, extra ...raftstore.Op) (runtime.Object, error) {
	m, _ := meta.Accessor(obj)
	data, err := o.encode(obj)
	if err != nil {
		return nil, err
	}
	res, err := o.store.Txn(ctx, append([]raftstore.Op{{Kind: raftstore.OpUpdate, Key: o.key(rs, m.GetNamespace(), m.GetName()), Value: data, IfModRevision: rev}}, extra...)...)
	if err != nil {
		return nil, err
	}
	setRV(obj, res.Results[0].KV.ModRevision)
	return obj, nil
}

func (o *objectStore) delete(ctx context.Context, rs *Resource, ns, name string, rev int64, extra ...raftstore.Op) error {
	_, err := o.store.Txn(ctx, append([]raftstore.Op{{Kind: raftstore.OpDelete, Key: o.key(rs, ns, name), IfModRevision: rev}}, extra...)...)
	return err
}

// sizeCheck rejects objects over the store's value limit with 413 rather than a store error.
func sizeCheck(data []byte) error {
	if len(data) > raftstore.DefaultMaxValueSize {
		return apierrors.NewRequestEntityTooLargeError("object exceeds the maximum size of 1.5 MiB")
	}
	return nil
}
