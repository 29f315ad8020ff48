package apiserver

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
)

// The ServiceAccount admission plugin, as kube-apiserver's: a pod runs as the "default"
// service account unless it names one, and gets a projected volume with a bound token,
// the cluster CA and its namespace, mounted where client libraries look for them
// (rest.InClusterConfig), unless the pod or its service account opts out. Unlike
// Kubernetes, which refuses a pod whose service account does not exist yet, skiff admits
// it without the volume: pods created before the serviceaccount controller has made a
// namespace's "default" are not refused, and clusters run without controllers (tests) get
// pods that do not wait for a CA ConfigMap nobody publishes.

const (
	saMountPath      = "/var/run/secrets/kubernetes.io/serviceaccount"
	saTokenExpiry    = 3607 // seconds, as kube-apiserver's projected token
	saVolumePrefix   = "kube-api-access-"
	rootCAConfigMap  = "kube-root-ca.crt"
	defaultSAAccount = "default"
)

func (s *Server) admitServiceAccount(ctx context.Context, q *request, obj runtime.Object) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || q.rs.GVR.Resource != "pods" {
		return
	}
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return // static pods' mirrors may not use service accounts
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = defaultSAAccount
	}
	pod.Spec.DeprecatedServiceAccount = pod.Spec.ServiceAccountName
	sas := s.reg.lookup("", "v1", "serviceaccounts")
	o, _, err := s.objs.get(ctx, sas, pod.Namespace, pod.Spec.ServiceAccountName, true)
	if err != nil {
		// Not in this server's replica yet (created a moment ago through the leader, as
		// kube-apiserver's informer may lag): look it up linearizably, as its admission
		// plugin falls back to a live lookup.
		if o, _, err = s.objs.get(ctx, sas, pod.Namespace, pod.Spec.ServiceAccountName, false); err != nil {
			return
		}
	}
	automount := true
	if a := o.(*corev1.ServiceAccount).AutomountServiceAccountToken; a != nil {
		automount = *a
	}
	if a := pod.Spec.AutomountServiceAccountToken; a != nil {
		automount = *a
	}
	if !automount {
		return
	}
	name := ""
	for _, v := range pod.Spec.Volumes {
		if len(v.Name) > len(saVolumePrefix) && v.Name[:len(saVolumePrefix)] == saVolumePrefix {
			name = v.Name // admitted before (an update, or a re-sent object)
		}
	}
	if name == "" {
		name = saVolumePrefix + utilrand.String(5)
		expiry, mode := int64(saTokenExpiry), int32(0o644)
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: &mode,
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: &expiry, Path: "token"}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: rootCAConfigMap},
					Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
					FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
			},
		}}})
	}
	mount := func(cs []corev1.Container) {
		for i := range cs {
			has := false
			for _, m := range cs[i].VolumeMounts {
				has = has || m.MountPath == saMountPath
			}
			if !has {
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, corev1.VolumeMount{Name: name, ReadOnly: true, MountPath: saMountPath})
			}
		}
	}
	mount(pod.Spec.InitContainers)
	mount(pod.Spec.Containers)
}
