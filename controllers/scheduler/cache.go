package scheduler

import (
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// schedCache is the scheduler's view of nodes and the pods on them, fed by informers and by
// the scheduler's own assumptions: a pod is counted on its node from the moment it is
// chosen, before the bind is confirmed, so the next decision already sees it.
type schedCache struct {
	mu      sync.Mutex
	nodes   map[string]*NodeInfo
	podNode map[types.UID]string
	assumed map[types.UID]bool
	list    []*NodeInfo // nodes with a Node object, by name; nil when it must be rebuilt
}

func newSchedCache() *schedCache {
	return &schedCache{nodes: map[string]*NodeInfo{}, podNode: map[types.UID]string{}, assumed: map[types.UID]bool{}}
}

func (c *schedCache) nodeInfo(name string) *NodeInfo {
	ni, ok := c.nodes[name]
	if !ok {
		ni = NewNodeInfo(nil)
		c.nodes[name] = ni
	}
	return ni
}

// SetNode adds or updates a node.
func (c *schedCache) SetNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni := c.nodeInfo(node.Name)
	if ni.Node == nil {
		c.list = nil
	}
	ni.SetNode(node)
}

// RemoveNode drops a node; pods still bound to it stay counted until they go.
func (c *schedCache) RemoveNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni, ok := c.nodes[name]
	if !ok {
		return
	}
	ni.SetNode(nil)
	if len(ni.Pods) == 0 {
		delete(c.nodes, name)
	}
	c.list = nil
}

// AddPod counts a pod the API says is bound (confirming an assumption).
func (c *schedCache) AddPod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(pod.UID)
	c.nodeInfo(pod.Spec.NodeName).AddPod(pod)
	c.podNode[pod.UID] = pod.Spec.NodeName
}

// RemovePod stops counting a pod (deleted, or terminated).
func (c *schedCache) RemovePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(uid)
}

func (c *schedCache) removeLocked(uid types.UID) {
	delete(c.assumed, uid)
	name, ok := c.podNode[uid]
	if !ok {
		return
	}
	delete(c.podNode, uid)
	ni := c.nodes[name]
	ni.RemovePod(uid)
	if ni.Node == nil && len(ni.Pods) == 0 {
		delete(c.nodes, name)
	}
}

// IsAssumed reports whether a bind of the pod is in flight.
func (c *schedCache) IsAssumed(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.assumed[uid]
}

// Forget undoes an assumption whose bind failed.
func (c *schedCache) Forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.assumed[uid] {
		c.removeLocked(uid)
	}
}

// FinishBinding ends the assumption of a successfully bound pod: it stays counted, now as
// a bound pod that the informer will confirm.
func (c *schedCache) FinishBinding(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.assumed, uid)
}

// ScheduleAndAssume runs decide over the nodes and, if it picks one, counts pod there as
// assumed, all under one lock so that no event slips between decision and assumption.
func (c *schedCache) ScheduleAndAssume(pod *corev1.Pod, decide func([]*NodeInfo) (string, error)) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.list == nil {
		c.list = make([]*NodeInfo, 0, len(c.nodes))
		for _, ni := range c.nodes {
			if ni.Node != nil {
				c.list = append(c.list, ni)
			}
		}
		sort.Slice(c.list, func(i, j int) bool { return c.list[i].Node.Name < c.list[j].Node.Name })
	}
	node, err := decide(c.list)
	if err != nil {
		return "", err
	}
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = node
	c.removeLocked(pod.UID)
	c.nodeInfo(node).AddPod(assumed)
	c.podNode[pod.UID] = node
	c.assumed[pod.UID] = true
	return node, nil
}
