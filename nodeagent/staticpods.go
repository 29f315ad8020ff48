package nodeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// Annotations the kubelet puts on static and mirror pods.
const (
	annoConfigSource = "kubernetes.io/config.source"
	annoConfigHash   = "kubernetes.io/config.hash"
	annoConfigMirror = "kubernetes.io/config.mirror"
)

// staticPods runs the pods of Config.PodManifestPath: they need no API to
// run, and each is mirrored to the API as a mirror pod (read-only for the
// cluster) carrying its status.
type staticPods struct {
	m    *podManager
	wake chan struct{}

	mu   sync.Mutex
	pods map[types.UID]*corev1.Pod
}

func newStaticPods(m *podManager) *staticPods {
	return &staticPods{m: m, wake: make(chan struct{}, 1), pods: map[types.UID]*corev1.Pod{}}
}

func isMirrorPod(p *corev1.Pod) bool { _, ok := p.Annotations[annoConfigMirror]; return ok }

func isStaticPod(p *corev1.Pod) bool {
	return p.Annotations[annoConfigSource] == "file" && !isMirrorPod(p)
}

func (s *staticPods) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *staticPods) get(uid types.UID) *corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pods[uid]
}

func (s *staticPods) byName(ns, name string) *corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pods {
		if p.Namespace == ns && p.Name == name {
			return p
		}
	}
	return nil
}

// setStatus keeps a static pod's status, which the mirror pod reports.
func (s *staticPods) setStatus(uid types.UID, st corev1.PodStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pods[uid]; p != nil && !apiequality.Semantic.DeepEqual(p.Status, st) {
		cp := p.DeepCopy() // readers hold the old object: replace, never modify
		cp.Status = st
		s.pods[uid] = cp
		s.poke()
	}
}

func (s *staticPods) run(ctx context.Context) {
	dir := s.m.a.cfg.PodManifestPath
	if dir == "" {
		return
	}
	t := time.NewTicker(s.m.a.cfg.StaticPodCheckInterval)
	defer t.Stop()
	for {
		s.scan(dir)
		s.syncMirrors(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// scan reads the manifests and starts or stops their pods.
func (s *staticPods) scan(dir string) {
	found := map[types.UID]*corev1.Pod{}
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		s.m.a.log.Warn("reading static pod manifests", "dir", dir, "err", err)
		return
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p, err := s.readManifest(filepath.Join(dir, e.Name()))
		if err != nil {
			s.m.a.log.Warn("bad static pod manifest", "file", e.Name(), "err", err)
			continue
		}
		found[p.UID] = p
	}
	s.mu.Lock()
	var changed []*corev1.Pod
	for uid, p := range found {
		if old := s.pods[uid]; old != nil {
			continue // unchanged manifest: same UID, keep its status
		}
		s.pods[uid] = p
		changed = append(changed, p)
	}
	for uid, p := range s.pods {
		if found[uid] == nil {
			delete(s.pods, uid)
			changed = append(changed, p)
		}
	}
	s.mu.Unlock()
	for _, p := range changed {
		s.m.wake(p.UID, p.Namespace, p.Name)
	}
}

// readManifest parses one manifest the kubelet's way: the pod's name gets
// the node's name appended, its UID is a hash of the manifest and node, so
// an edited manifest is a new pod.
func (s *staticPods) readManifest(path string) (*corev1.Pod, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p corev1.Pod
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		if err := yaml.Unmarshal(data, &p); err != nil {
			return nil, err
		}
	}
	if p.Kind != "" && p.Kind != "Pod" {
		return nil, fmt.Errorf("kind %q is not Pod", p.Kind)
	}
	if p.Name == "" {
		return nil, fmt.Errorf("no metadata.name")
	}
	node := s.m.a.cfg.NodeName
	sum := sha256.Sum256(append(append([]byte(node), 0), data...))
	hash := hex.EncodeToString(sum[:16])
	p.UID = types.UID(hash)
	p.Name = p.Name + "-" + node
	if p.Namespace == "" {
		p.Namespace = metav1.NamespaceDefault
	}
	p.Spec.NodeName = node
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[annoConfigSource] = "file"
	p.Annotations[annoConfigHash] = hash
	defaultPodSpec(&p.Spec)
	return &p, nil
}

// defaultPodSpec fills what the apiserver would default for API pods.
func defaultPodSpec(s *corev1.PodSpec) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.TerminationGracePeriodSeconds == nil {
		g := int64(30)
		s.TerminationGracePeriodSeconds = &g
	}
	for _, cs := range [][]corev1.Container{s.InitContainers, s.Containers} {
		for i := range cs {
			if cs[i].TerminationMessagePath == "" {
				cs[i].TerminationMessagePath = "/dev/termination-log"
			}
		}
	}
}

// syncMirrors makes the API show one mirror pod per static pod, with its
// status, and deletes mirror pods whose static pod is gone or changed.
func (s *staticPods) syncMirrors(ctx context.Context) {
	lp := s.m.lister.Load()
	if lp == nil {
		return // API not reachable yet; static pods run regardless
	}
	pods := s.m.a.cfg.Client.CoreV1().Pods
	s.mu.Lock()
	want := make([]*corev1.Pod, 0, len(s.pods))
	for _, p := range s.pods {
		want = append(want, p)
	}
	s.mu.Unlock()
	sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
	wanted := map[string]bool{}
	for _, p := range want {
		wanted[p.Namespace+"/"+p.Name] = true
		mirror, err := (*lp).Pods(p.Namespace).Get(p.Name)
		if err == nil && mirror.Annotations[annoConfigMirror] != p.Annotations[annoConfigHash] {
			// An older manifest's mirror, or an API pod in the way.
			if isMirrorPod(mirror) {
				_ = pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &mirror.UID}})
			}
			continue
		}
		if err != nil {
			m := p.DeepCopy()
			m.UID, m.ResourceVersion = "", ""
			m.Annotations[annoConfigMirror] = p.Annotations[annoConfigHash]
			if n := s.m.node.Load(); n != nil {
				m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}
			}
			m.Status = corev1.PodStatus{}
			if _, err := pods(p.Namespace).Create(ctx, m, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				s.m.a.log.Warn("creating mirror pod", "pod", p.Namespace+"/"+p.Name, "err", err)
			}
			continue
		}
		if !apiequality.Semantic.DeepEqual(mirror.Status, p.Status) && p.Status.Phase != "" {
			m := mirror.DeepCopy()
			m.Status = p.Status
			if _, err := pods(p.Namespace).UpdateStatus(ctx, m, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
				s.m.a.log.Warn("updating mirror pod status", "pod", p.Namespace+"/"+p.Name, "err", err)
			}
		}
	}
	all, err := (*lp).List(everything())
	if err != nil {
		return
	}
	for _, mp := range all {
		if isMirrorPod(mp) && !wanted[mp.Namespace+"/"+mp.Name] && mp.DeletionTimestamp == nil {
			_ = pods(mp.Namespace).Delete(ctx, mp.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &mp.UID}})
		}
	}
}

func everything() labels.Selector { return labels.Everything() }
