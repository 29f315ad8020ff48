package apiserver

import (
	"bytes"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The rules below are the basics of Kubernetes' validation: required fields, name
// formats, selectors that match their templates, and immutable fields.

func validatePodSpec(s *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.Containers) == 0 {
		errs = append(errs, field.Required(p.Child("containers"), ""))
	}
	names := sets.New[string]()
	check := func(cs []corev1.Container, cp *field.Path) {
		for i, c := range cs {
			ip := cp.Index(i)
			if c.Name == "" {
				errs = append(errs, field.Required(ip.Child("name"), ""))
			} else {
				for _, msg := range validation.IsDNS1123Label(c.Name) {
					errs = append(errs, field.Invalid(ip.Child("name"), c.Name, msg))
				}
				if names.Has(c.Name) {
					errs = append(errs, field.Duplicate(ip.Child("name"), c.Name))
				}
				names.Insert(c.Name)
			}
			if c.Image == "" {
				errs = append(errs, field.Required(ip.Child("image"), ""))
			}
			for j, port := range c.Ports {
				if port.ContainerPort < 1 || port.ContainerPort > 65535 {
					errs = append(errs, field.Invalid(ip.Child("ports").Index(j).Child("containerPort"), port.ContainerPort, "must be between 1 and 65535, inclusive"))
				}
			}
		}
	}
	check(s.InitContainers, p.Child("initContainers"))
	check(s.Containers, p.Child("containers"))
	switch s.RestartPolicy {
	case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(p.Child("restartPolicy"), s.RestartPolicy, []string{"Always", "OnFailure", "Never"}))
	}
	return errs
}

func validatePod(o, old runtime.Object) field.ErrorList {
	p := o.(*corev1.Pod)
	errs := validatePodSpec(&p.Spec, field.NewPath("spec"))
	if old == nil {
		return errs
	}
	op := old.(*corev1.Pod)
	// A finished pod stays finished, as kube-apiserver enforces: a late status write (a
	// node agent's, or anyone's) cannot bring it back to Running.
	if terminal := op.Status.Phase == corev1.PodSucceeded || op.Status.Phase == corev1.PodFailed; terminal && p.Status.Phase != op.Status.Phase {
		errs = append(errs, field.Forbidden(field.NewPath("status", "phase"), fmt.Sprintf("may not transition from terminal phase %s to %s", op.Status.Phase, p.Status.Phase)))
	}
	// A pod's spec is immutable but for images, activeDeadlineSeconds and added
	// tolerations; nodeName changes only through binding.
	if sameBytes(&p.Spec, &op.Spec) {
		// The usual case (every status write): identical encodings are equal specs, found
		// without the copies and the reflective comparison below.
		return errs
	}
	a, b := p.Spec.DeepCopy(), op.Spec.DeepCopy()
	for i := range a.Containers {
		if i < len(b.Containers) {
			a.Containers[i].Image = b.Containers[i].Image
		}
	}
	for i := range a.InitContainers {
		if i < len(b.InitContainers) {
			a.InitContainers[i].Image = b.InitContainers[i].Image
		}
	}
	a.ActiveDeadlineSeconds, a.Tolerations = b.ActiveDeadlineSeconds, b.Tolerations
	if !apiequality.Semantic.DeepEqual(a, b) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations)"))
	}
	return errs
}

// sameBytes tells two messages whose protobuf encodings (deterministic: map keys sorted)
// are identical; false when either fails to encode.
func sameBytes(a, b interface{ Marshal() ([]byte, error) }) bool {
	x, err := a.Marshal()
	if err != nil {
		return false
	}
	y, err := b.Marshal()
	return err == nil && bytes.Equal(x, y)
}

// validateSelector checks a workload's selector against its template's labels.
func validateSelector(sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return append(errs, field.Required(p.Child("selector"), ""))
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return append(errs, field.Invalid(p.Child("selector"), sel, err.Error()))
	}
	if !s.Matches(labels.Set(tmpl.Labels)) {
		errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), tmpl.Labels, "`selector` does not match template `labels`"))
	}
	return errs
}

func validateWorkload(sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec, replicas *int32, oldSel *metav1.LabelSelector, hasOld bool) field.ErrorList {
	p := field.NewPath("spec")
	errs := validateSelector(sel, tmpl, p)
	errs = append(errs, validatePodSpec(&tmpl.Spec, p.Child("template", "spec"))...)
	if replicas != nil && *replicas < 0 {
		errs = append(errs, field.Invalid(p.Child("replicas"), *replicas, "must be greater than or equal to 0"))
	}
	if hasOld && !apiequality.Semantic.DeepEqual(sel, oldSel) {
		errs = append(errs, field.Invalid(p.Child("selector"), sel, "field is immutable"))
	}
	return errs
}

func validateDeployment(o, old runtime.Object) field.ErrorList {
	d := o.(*appsv1.Deployment)
	var oldSel *metav1.LabelSelector
	if old != nil {
		oldSel = old.(*appsv1.Deployment).Spec.Selector
	}
	errs := validateWorkload(d.Spec.Selector, &d.Spec.Template, d.Spec.Replicas, oldSel, old != nil)
	if d.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(field.NewPath("spec", "template", "spec", "restartPolicy"), d.Spec.Template.Spec.RestartPolicy, []string{"Always"}))
	}
	return errs
}

func validateReplicaSet(o, old runtime.Object) field.ErrorList {
	r := o.(*appsv1.ReplicaSet)
	var oldSel *metav1.LabelSelector
	if old != nil {
		oldSel = old.(*appsv1.ReplicaSet).Spec.Selector
	}
	return validateWorkload(r.Spec.Selector, &r.Spec.Template, r.Spec.Replicas, oldSel, old != nil)
}

func validateDaemonSet(o, old runtime.Object) field.ErrorList {
	d := o.(*appsv1.DaemonSet)
	var oldSel *metav1.LabelSelector
	if old != nil {
		oldSel = old.(*appsv1.DaemonSet).Spec.Selector
	}
	return validateWorkload(d.Spec.Selector, &d.Spec.Template, nil, oldSel, old != nil)
}

func validateJob(o, old runtime.Object) field.ErrorList {
	j := o.(*batchv1.Job)
	p := field.NewPath("spec")
	errs := validatePodSpec(&j.Spec.Template.Spec, p.Child("template", "spec"))
	if rp := j.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
		errs = append(errs, field.NotSupported(p.Child("template", "spec", "restartPolicy"), rp, []string{"OnFailure", "Never"}))
	}
	if j.Spec.Selector != nil {
		errs = append(errs, validateSelector(j.Spec.Selector, &j.Spec.Template, p)...)
	}
	if old != nil && !apiequality.Semantic.DeepEqual(j.Spec.Selector, old.(*batchv1.Job).Spec.Selector) {
		errs = append(errs, field.Invalid(p.Child("selector"), j.Spec.Selector, "field is immutable"))
	}
	return errs
}

func validateService(o, old runtime.Object) field.ErrorList {
	s := o.(*corev1.Service)
	p := field.NewPath("spec")
	var errs field.ErrorList
	if len(s.Spec.Ports) == 0 && s.Spec.ClusterIP != corev1.ClusterIPNone && s.Spec.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Required(p.Child("ports"), ""))
	}
	for i, port := range s.Spec.Ports {
		if port.Port < 1 || port.Port > 65535 {
			errs = append(errs, field.Invalid(p.Child("ports").Index(i).Child("port"), port.Port, "must be between 1 and 65535, inclusive"))
		}
		if len(s.Spec.Ports) > 1 && port.Name == "" {
			errs = append(errs, field.Required(p.Child("ports").Index(i).Child("name"), ""))
		}
	}
	switch s.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName:
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), s.Spec.Type, []string{"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"}))
	}
	if old != nil {
		if oip := old.(*corev1.Service).Spec.ClusterIP; oip != "" && s.Spec.ClusterIP != "" && s.Spec.ClusterIP != oip {
			errs = append(errs, field.Invalid(p.Child("clusterIP"), s.Spec.ClusterIP, "field is immutable"))
		}
	}
	return errs
}

func validateDataKeys(keys []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, k := range keys {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(p.Key(k), k, msg))
		}
	}
	return errs
}

func validateConfigMap(o, old runtime.Object) field.ErrorList {
	c := o.(*corev1.ConfigMap)
	var keys []string
	for k := range c.Data {
		keys = append(keys, k)
	}
	for k := range c.BinaryData {
		if _, dup := c.Data[k]; dup {
			return field.ErrorList{field.Invalid(field.NewPath("binaryData").Key(k), k, "duplicate of key present in data")}
		}
		keys = append(keys, k)
	}
	errs := validateDataKeys(keys, field.NewPath("data"))
	if old != nil && immutable(old.(*corev1.ConfigMap).Immutable) && !apiequality.Semantic.DeepEqual(c.Data, old.(*corev1.ConfigMap).Data) {
		errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
	}
	return errs
}

func validateSecret(o, old runtime.Object) field.ErrorList {
	s := o.(*corev1.Secret)
	var keys []string
	for k := range s.Data {
		keys = append(keys, k)
	}
	errs := validateDataKeys(keys, field.NewPath("data"))
	if old != nil {
		os := old.(*corev1.Secret)
		if os.Type != s.Type {
			errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, "field is immutable"))
		}
		if immutable(os.Immutable) && !apiequality.Semantic.DeepEqual(s.Data, os.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
		}
	}
	return errs
}

func immutable(b *bool) bool { return b != nil && *b }

var _ = fmt.Sprint
