package podutil

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// NodeNameIndex indexes pods by spec.nodeName.
const NodeNameIndex = "skiff-spec.nodeName"

// AddNodeNameIndex adds NodeNameIndex to a pod informer once; several controllers share it.
// It must be called before the informer starts (that is, from a constructor).
func AddNodeNameIndex(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[NodeNameIndex]; ok {
		return nil
	}
	err := inf.AddIndexers(cache.Indexers{NodeNameIndex: func(obj any) ([]string, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Spec.NodeName == "" {
			return nil, nil
		}
		return []string{p.Spec.NodeName}, nil
	}})
	if err != nil {
		return fmt.Errorf("pod node-name index: %w", err)
	}
	return nil
}

// PodsOnNode lists the pods the index holds for node.
func PodsOnNode(inf cache.SharedIndexInformer, node string) []*corev1.Pod {
	objs, err := inf.GetIndexer().ByIndex(NodeNameIndex, node)
	if err != nil {
		return nil
	}
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out
}
