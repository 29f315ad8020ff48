package apiserver

import (
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// col builds a column; wide columns (priority 1) show only with -o wide.
func col(name, typ string, wide bool) metav1.TableColumnDefinition {
	c := metav1.TableColumnDefinition{Name: name, Type: typ}
	if wide {
		c.Priority = 1
	}
	if name == "Name" {
		c.Format = "name"
	}
	return c
}

var (
	namespaceColumns     = []metav1.TableColumnDefinition{col("Name", "string", false), col("Status", "string", false), col("Age", "string", false)}
	nodeColumns          = []metav1.TableColumnDefinition{col("Name", "string", false), col("Status", "string", false), col("Roles", "string", false), col("Age", "string", false), col("Version", "string", false), col("Internal-IP", "string", true), col("External-IP", "string", true), col("OS-Image", "string", true), col("Kernel-Version", "string", true), col("Container-Runtime", "string", true)}
	podColumns           = []metav1.TableColumnDefinition{col("Name", "string", false), col("Ready", "string", false), col("Status", "string", false), col("Restarts", "string", false), col("Age", "string", false), col("IP", "string", true), col("Node", "string", true), col("Nominated Node", "string", true), col("Readiness Gates", "string", true)}
	serviceColumns       = []metav1.TableColumnDefinition{col("Name", "string", false), col("Type", "string", false), col("Cluster-IP", "string", false), col("External-IP", "string", false), col("Port(s)", "string", false), col("Age", "string", false), col("Selector", "string", true)}
	endpointsColumns     = []metav1.TableColumnDefinition{col("Name", "string", false), col("Endpoints", "string", false), col("Age", "string", false)}
	dataColumns          = []metav1.TableColumnDefinition{col("Name", "string", false), col("Data", "integer", false), col("Age", "string", false)}
	secretColumns        = []metav1.TableColumnDefinition{col("Name", "string", false), col("Type", "string", false), col("Data", "integer", false), col("Age", "string", false)}
	saColumns            = []metav1.TableColumnDefinition{col("Name", "string", false), col("Secrets", "integer", false), col("Age", "string", false)}
	eventColumns         = []metav1.TableColumnDefinition{col("Last Seen", "string", false), col("Type", "string", false), col("Reason", "string", false), col("Object", "string", false), col("Subobject", "string", true), col("Source", "string", true), col("Message", "string", false), col("First Seen", "string", true), col("Count", "string", true), col("Name", "string", true)}
	deploymentColumns    = []metav1.TableColumnDefinition{col("Name", "string", false), col("Ready", "string", false), col("Up-to-date", "string", false), col("Available", "string", false), col("Age", "string", false), col("Containers", "string", true), col("Images", "string", true), col("Selector", "string", true)}
	replicaSetColumns    = []metav1.TableColumnDefinition{col("Name", "string", false), col("Desired", "integer", false), col("Current", "integer", false), col("Ready", "integer", false), col("Age", "string", false), col("Containers", "string", true), col("Images", "string", true), col("Selector", "string", true)}
	daemonSetColumns     = []metav1.TableColumnDefinition{col("Name", "string", false), col("Desired", "integer", false), col("Current", "integer", false), col("Ready", "integer", false), col("Up-to-date", "integer", false), col("Available", "integer", false), col("Node Selector", "string", false), col("Age", "string", false), col("Containers", "string", true), col("Images", "string", true), col("Selector", "string", true)}
	jobColumns           = []metav1.TableColumnDefinition{col("Name", "string", false), col("Status", "string", false), col("Completions", "string", false), col("Duration", "string", false), col("Age", "string", false), col("Containers", "string", true), col("Images", "string", true), col("Selector", "string", true)}
	endpointSliceColumns = []metav1.TableColumnDefinition{col("Name", "string", false), col("AddressType", "string", false), col("Ports", "string", false), col("Endpoints", "string", false), col("Age", "string", false)}
	leaseColumns         = []metav1.TableColumnDefinition{col("Name", "string", false), col("Holder", "string", false), col("Age", "string", false)}
	bindingColumns       = []metav1.TableColumnDefinition{col("Name", "string", false), col("Role", "string", false), col("Age", "string", false)}
)

func namespaceRow(o runtime.Object, now time.Time) []any {
	n := o.(*corev1.Namespace)
	return []any{n.Name, string(n.Status.Phase), age(n, now)}
}

func nodeRow(o runtime.Object, now time.Time) []any {
	n := o.(*corev1.Node)
	status := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			status = "NotReady"
			if c.Status == corev1.ConditionTrue {
				status = "Ready"
			}
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	var roles []string
	for k := range n.Labels {
		if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
			roles = append(roles, r)
		}
	}
	sort.Strings(roles)
	role := strings.Join(roles, ",")
	if role == "" {
		role = "<none>"
	}
	addr := func(t corev1.NodeAddressType) string {
		for _, a := range n.Status.Addresses {
			if a.Type == t {
				return a.Address
			}
		}
		return "<none>"
	}
	ni := n.Status.NodeInfo
	return []any{n.Name, status, role, age(n, now), ni.KubeletVersion, addr(corev1.NodeInternalIP), addr(corev1.NodeExternalIP), orNone(ni.OSImage), orNone(ni.KernelVersion), orNone(ni.ContainerRuntimeVersion)}
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// podRow follows kubectl's printPod: the status shows the most telling reason.
func podRow(o runtime.Object, now time.Time) []any {
	p := o.(*corev1.Pod)
	restarts, ready := 0, 0
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	for i, c := range p.Status.InitContainerStatuses {
		restarts += int(c.RestartCount)
		if c.State.Terminated != nil && c.State.Terminated.ExitCode == 0 {
			continue
		}
		switch {
		case c.State.Terminated != nil:
			reason = "Init:" + orDefault(c.State.Terminated.Reason, fmt.Sprintf("ExitCode:%d", c.State.Terminated.ExitCode))
		case c.State.Waiting != nil && c.State.Waiting.Reason != "" && c.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + c.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
		break
	}
	for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
		c := p.Status.ContainerStatuses[i]
		restarts += int(c.RestartCount)
		switch {
		case c.State.Waiting != nil && c.State.Waiting.Reason != "":
			reason = c.State.Waiting.Reason
		case c.State.Terminated != nil && c.State.Terminated.Reason != "":
			reason = c.State.Terminated.Reason
		case c.State.Terminated != nil:
			reason = fmt.Sprintf("ExitCode:%d", c.State.Terminated.ExitCode)
		case c.Ready && c.State.Running != nil:
			ready++
		}
	}
	if p.DeletionTimestamp != nil {
		reason = "Terminating"
	}
	node, ip := orNone(p.Spec.NodeName), orNone(p.Status.PodIP)
	return []any{p.Name, fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers)), reason, int64(restarts), age(p, now), ip, node, orNone(p.Status.NominatedNodeName), "<none>"}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func serviceRow(o runtime.Object, now time.Time) []any {
	s := o.(*corev1.Service)
	var ports []string
	for _, p := range s.Spec.Ports {
		x := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if p.NodePort != 0 {
			x = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		}
		ports = append(ports, x)
	}
	ext := "<none>"
	if len(s.Spec.ExternalIPs) > 0 {
		ext = strings.Join(s.Spec.ExternalIPs, ",")
	} else if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
		ext = "<pending>"
	}
	return []any{s.Name, string(s.Spec.Type), orNone(s.Spec.ClusterIP), ext, orNone(strings.Join(ports, ",")), age(s, now), orNone(labelsString(s.Spec.Selector))}
}

func labelsString(m map[string]string) string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func endpointsRow(o runtime.Object, now time.Time) []any {
	e := o.(*corev1.Endpoints)
	var list []string
	for _, s := range e.Subsets {
		for _, a := range s.Addresses {
			for _, p := range s.Ports {
				list = append(list, fmt.Sprintf("%s:%d", a.IP, p.Port))
			}
		}
	}
	return []any{e.Name, orNone(strings.Join(list, ",")), age(e, now)}
}

// endpointSliceRow prints as kubectl does: ports joined, at most three addresses then
// "+ N more...".
func endpointSliceRow(o runtime.Object, now time.Time) []any {
	e := o.(*discoveryv1.EndpointSlice)
	var ports []string
	for _, p := range e.Ports {
		if p.Port != nil {
			ports = append(ports, fmt.Sprint(*p.Port))
		}
	}
	var addrs []string
	for _, ep := range e.Endpoints {
		addrs = append(addrs, ep.Addresses...)
	}
	list := strings.Join(addrs, ",")
	if len(addrs) > 3 {
		list = fmt.Sprintf("%s + %d more...", strings.Join(addrs[:3], ","), len(addrs)-3)
	}
	portList := strings.Join(ports, ",")
	if len(ports) == 0 && len(e.Ports) > 0 {
		portList = "<unset>"
	}
	return []any{e.Name, string(e.AddressType), orNone(portList), orNone(list), age(e, now)}
}

func secretRow(o runtime.Object, now time.Time) []any {
	s := o.(*corev1.Secret)
	return []any{s.Name, string(s.Type), int64(len(s.Data)), age(s, now)}
}

func saRow(o runtime.Object, now time.Time) []any {
	s := o.(*corev1.ServiceAccount)
	return []any{s.Name, int64(len(s.Secrets)), age(s, now)}
}

func eventRow(o runtime.Object, now time.Time) []any {
	e := o.(*corev1.Event)
	last := e.LastTimestamp.Time
	if last.IsZero() {
		last = e.EventTime.Time
	}
	since := func(t time.Time) string {
		if t.IsZero() {
			return "<unknown>"
		}
		return duration.HumanDuration(now.Sub(t))
	}
	obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
	return []any{since(last), e.Type, e.Reason, obj, e.InvolvedObject.FieldPath, e.Source.Component, strings.TrimSpace(e.Message), since(e.FirstTimestamp.Time), int64(e.Count), e.Name}
}

func containersAndImages(spec corev1.PodSpec) (string, string) {
	var names, images []string
	for _, c := range spec.Containers {
		names = append(names, c.Name)
		images = append(images, c.Image)
	}
	return strings.Join(names, ","), strings.Join(images, ",")
}

func deploymentRow(o runtime.Object, now time.Time) []any {
	d := o.(*appsv1.Deployment)
	c, i := containersAndImages(d.Spec.Template.Spec)
	return []any{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, deref32(d.Spec.Replicas)), int64(d.Status.UpdatedReplicas), int64(d.Status.AvailableReplicas), age(d, now), c, i, selectorString(d.Spec.Selector)}
}

func replicaSetRow(o runtime.Object, now time.Time) []any {
	r := o.(*appsv1.ReplicaSet)
	c, i := containersAndImages(r.Spec.Template.Spec)
	return []any{r.Name, int64(deref32(r.Spec.Replicas)), int64(r.Status.Replicas), int64(r.Status.ReadyReplicas), age(r, now), c, i, selectorString(r.Spec.Selector)}
}

func daemonSetRow(o runtime.Object, now time.Time) []any {
	d := o.(*appsv1.DaemonSet)
	c, i := containersAndImages(d.Spec.Template.Spec)
	return []any{d.Name, int64(d.Status.DesiredNumberScheduled), int64(d.Status.CurrentNumberScheduled), int64(d.Status.NumberReady), int64(d.Status.UpdatedNumberScheduled), int64(d.Status.NumberAvailable), orNone(labelsString(d.Spec.Template.Spec.NodeSelector)), age(d, now), c, i, selectorString(d.Spec.Selector)}
}

func jobRow(o runtime.Object, now time.Time) []any {
	j := o.(*batchv1.Job)
	status := "Running"
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
			status = string(c.Type)
		}
	}
	if j.Spec.Suspend != nil && *j.Spec.Suspend {
		status = "Suspended"
	}
	comp := fmt.Sprintf("%d/%d", j.Status.Succeeded, deref32(j.Spec.Completions))
	dur := ""
	if j.Status.StartTime != nil {
		end := now
		if j.Status.CompletionTime != nil {
			end = j.Status.CompletionTime.Time
		}
		dur = duration.HumanDuration(end.Sub(j.Status.StartTime.Time))
	}
	c, i := containersAndImages(j.Spec.Template.Spec)
	return []any{j.Name, status, comp, dur, age(j, now), c, i, selectorString(j.Spec.Selector)}
}

func leaseRow(o runtime.Object, now time.Time) []any {
	l := o.(*coordinationv1.Lease)
	h := ""
	if l.Spec.HolderIdentity != nil {
		h = *l.Spec.HolderIdentity
	}
	return []any{l.Name, h, age(l, now)}
}
