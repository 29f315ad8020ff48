package apiserver

import (
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func gvr(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}

var all = []string{"all"}

// builtinResources is every resource skiff serves. Each entry is the whole registration.
func builtinResources() []*Resource {
	return []*Resource{
		{GVR: gvr("", "v1", "namespaces"), Kind: "Namespace", ShortNames: []string{"ns"}, Status: true,
			Extra:   []SubresourceInfo{{Name: "finalize", Kind: "Namespace", Verbs: []string{"update"}}},
			Default: defaultNamespace, Columns: namespaceColumns, Row: namespaceRow,
			Fields: func(o runtime.Object) fields.Set {
				return fields.Set{"status.phase": string(o.(*corev1.Namespace).Status.Phase)}
			}},
		{GVR: gvr("", "v1", "nodes"), Kind: "Node", ShortNames: []string{"no"}, Status: true,
			Columns: nodeColumns, Row: nodeRow,
			Fields: func(o runtime.Object) fields.Set {
				return fields.Set{"spec.unschedulable": boolString(o.(*corev1.Node).Spec.Unschedulable)}
			}},
		{GVR: gvr("", "v1", "pods"), Kind: "Pod", Namespaced: true, ShortNames: []string{"po"}, Categories: all,
			Status: true, ResetStatusOnCreate: true,
			Extra: []SubresourceInfo{
				{Name: "binding", Kind: "Binding", Verbs: []string{"create"}},
				{Name: "eviction", Kind: "Eviction", Group: "policy", Verbs: []string{"create"}},
				{Name: "log", Kind: "Pod", Verbs: []string{"get"}},
				{Name: "exec", Kind: "PodExecOptions", Verbs: []string{"create", "get"}},
				{Name: "portforward", Kind: "PodPortForwardOptions", Verbs: []string{"create", "get"}},
			},
			Default: defaultPod, Validate: validatePod, Columns: podColumns, Row: podRow,
			Fields: podFields, Graceful: podGrace},
		{GVR: gvr("", "v1", "services"), Kind: "Service", Namespaced: true, ShortNames: []string{"svc"}, Categories: all,
			Status: true, ResetStatusOnCreate: true, Default: defaultService, Validate: validateService,
			Columns: serviceColumns, Row: serviceRow},
		{GVR: gvr("", "v1", "endpoints"), Kind: "Endpoints", Namespaced: true, ShortNames: []string{"ep"},
			Columns: endpointsColumns, Row: endpointsRow},
		{GVR: gvr("discovery.k8s.io", "v1", "endpointslices"), Kind: "EndpointSlice", Namespaced: true,
			Columns: endpointSliceColumns, Row: endpointSliceRow},
		{GVR: gvr("", "v1", "configmaps"), Kind: "ConfigMap", Namespaced: true, ShortNames: []string{"cm"},
			Validate: validateConfigMap, Columns: dataColumns, Row: func(o runtime.Object, now time.Time) []any {
				c := o.(*corev1.ConfigMap)
				return []any{c.Name, int64(len(c.Data) + len(c.BinaryData)), age(c, now)}
			}},
		{GVR: gvr("", "v1", "secrets"), Kind: "Secret", Namespaced: true, Default: defaultSecret,
			Validate: validateSecret, Columns: secretColumns, Row: secretRow,
			Fields: func(o runtime.Object) fields.Set { return fields.Set{"type": string(o.(*corev1.Secret).Type)} }},
		{GVR: gvr("", "v1", "serviceaccounts"), Kind: "ServiceAccount", Namespaced: true, ShortNames: []string{"sa"},
			Extra:   []SubresourceInfo{{Name: "token", Kind: "TokenRequest", Group: "authentication.k8s.io", Verbs: []string{"create"}}},
			Columns: saColumns, Row: saRow},
		{GVR: gvr("", "v1", "events"), Kind: "Event", Namespaced: true, ShortNames: []string{"ev"},
			Columns: eventColumns, Row: eventRow, Fields: eventFields},
		{GVR: gvr("apps", "v1", "deployments"), Kind: "Deployment", Namespaced: true, ShortNames: []string{"deploy"}, Categories: all,
			Status: true, ResetStatusOnCreate: true, Scale: replicasScale,
			Default: defaultDeployment, Validate: validateDeployment, Columns: deploymentColumns, Row: deploymentRow},
		{GVR: gvr("apps", "v1", "replicasets"), Kind: "ReplicaSet", Namespaced: true, ShortNames: []string{"rs"}, Categories: all,
			Status: true, ResetStatusOnCreate: true, Scale: replicasScale,
			Default: defaultReplicaSet, Validate: validateReplicaSet, Columns: replicaSetColumns, Row: replicaSetRow},
		{GVR: gvr("apps", "v1", "daemonsets"), Kind: "DaemonSet", Namespaced: true, ShortNames: []string{"ds"}, Categories: all,
			Status: true, ResetStatusOnCreate: true,
			Default: defaultDaemonSet, Validate: validateDaemonSet, Columns: daemonSetColumns, Row: daemonSetRow},
		{GVR: gvr("apps", "v1", "controllerrevisions"), Kind: "ControllerRevision", Namespaced: true},
		{GVR: gvr("batch", "v1", "jobs"), Kind: "Job", Namespaced: true, Categories: all,
			Status: true, ResetStatusOnCreate: true,
			Default: defaultJob, Validate: validateJob, Columns: jobColumns, Row: jobRow},
		{GVR: gvr("coordination.k8s.io", "v1", "leases"), Kind: "Lease", Namespaced: true,
			Columns: leaseColumns, Row: leaseRow},
		{GVR: gvr("authorization.k8s.io", "v1", "selfsubjectaccessreviews"), Kind: "SelfSubjectAccessReview",
			Verbs: []string{"create"}, Serve: (*Server).serveAccessReview},
		{GVR: gvr("authorization.k8s.io", "v1", "subjectaccessreviews"), Kind: "SubjectAccessReview",
			Verbs: []string{"create"}, Serve: (*Server).serveAccessReview},
		{GVR: gvr("rbac.authorization.k8s.io", "v1", "roles"), Kind: "Role", Namespaced: true},
		{GVR: gvr("rbac.authorization.k8s.io", "v1", "rolebindings"), Kind: "RoleBinding", Namespaced: true,
			Columns: bindingColumns, Row: func(o runtime.Object, now time.Time) []any {
				b := o.(*rbacv1.RoleBinding)
				return []any{b.Name, b.RoleRef.Kind + "/" + b.RoleRef.Name, age(b, now)}
			}},
		{GVR: gvr("rbac.authorization.k8s.io", "v1", "clusterroles"), Kind: "ClusterRole"},
		{GVR: gvr("rbac.authorization.k8s.io", "v1", "clusterrolebindings"), Kind: "ClusterRoleBinding",
			Columns: bindingColumns, Row: func(o runtime.Object, now time.Time) []any {
				b := o.(*rbacv1.ClusterRoleBinding)
				return []any{b.Name, b.RoleRef.Kind + "/" + b.RoleRef.Name, age(b, now)}
			}},
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// replicasScale is the scale subresource of deployments and replicasets.
var replicasScale = &ScaleSpec{
	Get: func(o runtime.Object) (int32, int32, string) {
		switch x := o.(type) {
		case *appsv1.Deployment:
			return deref32(x.Spec.Replicas), x.Status.Replicas, selectorString(x.Spec.Selector)
		case *appsv1.ReplicaSet:
			return deref32(x.Spec.Replicas), x.Status.Replicas, selectorString(x.Spec.Selector)
		}
		return 0, 0, ""
	},
	Set: func(o runtime.Object, n int32) {
		switch x := o.(type) {
		case *appsv1.Deployment:
			x.Spec.Replicas = &n
		case *appsv1.ReplicaSet:
			x.Spec.Replicas = &n
		}
	},
}

func deref32(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func selectorString(s *metav1.LabelSelector) string {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil || s == nil {
		return ""
	}
	return sel.String()
}

func podFields(o runtime.Object) fields.Set {
	p := o.(*corev1.Pod)
	return fields.Set{
		"spec.nodeName": p.Spec.NodeName, "spec.restartPolicy": string(p.Spec.RestartPolicy),
		"spec.schedulerName": p.Spec.SchedulerName, "spec.serviceAccountName": p.Spec.ServiceAccountName,
		"spec.hostNetwork": boolString(p.Spec.HostNetwork), "status.phase": string(p.Status.Phase),
		"status.podIP": p.Status.PodIP, "status.nominatedNodeName": p.Status.NominatedNodeName,
	}
}

func eventFields(o runtime.Object) fields.Set {
	e := o.(*corev1.Event)
	return fields.Set{
		"involvedObject.kind": e.InvolvedObject.Kind, "involvedObject.namespace": e.InvolvedObject.Namespace,
		"involvedObject.name": e.InvolvedObject.Name, "involvedObject.uid": string(e.InvolvedObject.UID),
		"involvedObject.apiVersion": e.InvolvedObject.APIVersion, "involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath": e.InvolvedObject.FieldPath, "reason": e.Reason, "reportingComponent": e.ReportingController,
		"source": e.Source.Component, "type": e.Type,
	}
}

// podGrace: a pod bound to a node is deleted gracefully (its node stops it, then deletes it
// with grace 0); an unbound pod goes at once.
func podGrace(o runtime.Object, opts *metav1.DeleteOptions) (int64, bool) {
	p := o.(*corev1.Pod)
	if p.Spec.NodeName == "" {
		return 0, false
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return 0, false
	}
	g := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if p.Spec.TerminationGracePeriodSeconds != nil {
		g = *p.Spec.TerminationGracePeriodSeconds
	}
	if opts.GracePeriodSeconds != nil {
		g = *opts.GracePeriodSeconds
	}
	if g == 0 {
		return 0, false
	}
	return g, true
}

var _ = strings.TrimSpace
var _ = batchv1.SchemeGroupVersion
