package bench

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// configMapRegister is the register on ConfigMaps through one skiff server's API, with
// client-go: reads with resourceVersion "" (linearizable), creates, and updates that carry
// the resourceVersion read (compare-and-swap; a stale one gets 409 Conflict).
type configMapRegister struct {
	cs *kubernetes.Clientset
	ns string
}

var _ regStore = (*configMapRegister)(nil)

func newConfigMapRegister(cfg *rest.Config) (*configMapRegister, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1e5, 1e5 // the workload paces itself; no client-side throttling
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: client: %w", err)
	}
	return &configMapRegister{cs: cs, ns: metav1.NamespaceDefault}, nil
}

func (r *configMapRegister) get(ctx context.Context, key string) (string, string, error) {
	cm, err := r.cs.CoreV1().ConfigMaps(r.ns).Get(ctx, key, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	return cm.Data["v"], cm.ResourceVersion, nil
}

func (r *configMapRegister) create(ctx context.Context, key, value string) error {
	_, err := r.cs.CoreV1().ConfigMaps(r.ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: key},
		Data:       map[string]string{"v": value},
	}, metav1.CreateOptions{})
	return casError(err)
}

func (r *configMapRegister) update(ctx context.Context, key, value, version string) error {
	_, err := r.cs.CoreV1().ConfigMaps(r.ns).Update(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: key, ResourceVersion: version},
		Data:       map[string]string{"v": value},
	}, metav1.UpdateOptions{})
	return casError(err)
}

// casError marks the answers that say the write certainly did not apply. Anything else
// (a timeout, a broken connection, a 5xx) leaves the outcome unknown.
func casError(err error) error {
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %v", errCASFailed, err)
	}
	return err
}

// etcdRegister is the same register on one etcd member, at the store level: a
// linearizable Get, and Txns comparing the key's create or mod revision.
type etcdRegister struct{ cli *clientv3.Client }

var _ regStore = (*etcdRegister)(nil)

func (r *etcdRegister) get(ctx context.Context, key string) (string, string, error) {
	resp, err := r.cli.Get(ctx, key)
	if err != nil {
		return "", "", err
	}
	if len(resp.Kvs) == 0 {
		return "", "", nil
	}
	return string(resp.Kvs[0].Value), strconv.FormatInt(resp.Kvs[0].ModRevision, 10), nil
}

func (r *etcdRegister) create(ctx context.Context, key, value string) error {
	return r.txn(ctx, clientv3.Compare(clientv3.CreateRevision(key), "=", 0), key, value)
}

func (r *etcdRegister) update(ctx context.Context, key, value, version string) error {
	rev, err := strconv.ParseInt(version, 10, 64)
	if err != nil {
		return err
	}
	return r.txn(ctx, clientv3.Compare(clientv3.ModRevision(key), "=", rev), key, value)
}

func (r *etcdRegister) txn(ctx context.Context, cmp clientv3.Cmp, key, value string) error {
	resp, err := r.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, value)).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return errCASFailed
	}
	return nil
}
