package apiserver

import (
	"fmt"
	"mime"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func mediaTypeOf(r *http.Request) string {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt
}

func secondsDuration(n int64) time.Duration { return time.Duration(n) * time.Second }

// serveExtra serves the subresources that are not status or scale.
func (s *Server) serveExtra(w http.ResponseWriter, r *http.Request, q *request) {
	switch {
	case q.rs.GVR.Resource == "pods" && q.ri.Subresource == "binding" && q.ri.Verb == "create":
		s.handleBinding(w, r, q)
	case q.rs.GVR.Resource == "serviceaccounts" && q.ri.Subresource == "token" && q.ri.Verb == "create":
		s.handleTokenRequest(w, r, q)
	case q.rs.GVR.Resource == "pods" && q.ri.Subresource == "eviction" && q.ri.Verb == "create":
		s.handleEviction(w, r, q)
	case q.rs.GVR.Resource == "namespaces" && q.ri.Subresource == "finalize" && q.ri.Verb == "update":
		s.handleFinalize(w, r, q)
	case q.rs.GVR.Resource == "pods" && (q.ri.Subresource == "log" || q.ri.Subresource == "exec" || q.ri.Subresource == "portforward"):
		s.proxyToNode(w, r, q)
	default:
		writeError(w, errNotFoundPath(r), q.gr(), q.ri.Name)
	}
}

// handleBinding assigns a pod to a node (the scheduler's pods/binding), once: a bound pod
// gives 409.
func (s *Server) handleBinding(w http.ResponseWriter, r *http.Request, q *request) {
	data, err := s.readBody(r)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	dec, err := s.codecs.bodyDecoder(r, false)
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	gvk := corev1.SchemeGroupVersion.WithKind("Binding")
	obj, _, err := dec.Decode(data, &gvk, &corev1.Binding{})
	b, ok := obj.(*corev1.Binding)
	if err != nil || !ok {
		writeError(w, apierrors.NewBadRequest(fmt.Sprint("decoding Binding: ", err)), q.gr(), q.ri.Name)
		return
	}
	if b.Target.Kind != "" && b.Target.Kind != "Node" || b.Target.Name == "" {
		writeError(w, apierrors.NewInvalid(gvk.GroupKind(), b.Name, nil), q.gr(), q.ri.Name)
		return
	}
	pq := *q
	pq.ri = &requestInfo{Resource: "pods", Subresource: "binding", Name: q.ri.Name, Namespace: q.ns, Verb: "update"}
	_, _, err = s.update(r.Context(), &pq, writeOptions{fieldManager: managerFromUserAgent(r.UserAgent())}, func(old runtime.Object, _ int64) (runtime.Object, error) {
		pod := old.(*corev1.Pod)
		if b.UID != "" && b.UID != pod.UID {
			return nil, apierrors.NewConflict(q.gr(), pod.Name, fmt.Errorf("uid mismatch"))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(q.gr(), pod.Name, fmt.Errorf("pod %s is already assigned to node %q", pod.Name, pod.Spec.NodeName))
		}
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(q.gr(), pod.Name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name))
		}
		pod.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		setPodCondition(pod, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(s.cfg.Now())})
		return pod, nil
	})
	if err != nil {
		writeError(w, err, q.gr(), q.ri.Name)
		return
	}
	writeJSON(w, http.StatusCreated, "application/json", &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: http.StatusCreated})
}

// validationBase is the object an update is validated against. pods/binding is the one
// path allowed to set a pod's spec.nodeName, so its base already carries the node and
// the rest of the spec is still held immutable.
func validationBase(q *request, old, obj runtime.Object) runtime.Object {
	if q.ri.Subresource != "binding" {
		return old
	}
	op, ok := old.(*corev1.Pod)
	np, ok2 := obj.(*corev1.Pod)
	if !ok || !ok2 || op.Spec.NodeName != "" {
		return old
	}
	base := op.DeepCopy()
	base.Spec.NodeName = np.Spec.NodeName
	return base
}

func setPodCondition(pod *corev1.Pod, c corev1.PodCondition) {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == c.Type {
			pod.Status.Conditions[i] = c
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}
