// Package controllers runs skiff's kube-controller-manager and kube-scheduler roles: a
// Manager that, while this server leads, runs the enabled controller plugins against the
// Kubernetes API through client-go. The built-in plugins live in subpackages and are listed
// in builtin.go; the plugin framework itself is in controllers/framework.
package controllers
