// Package framework is what every skiff controller is built from: the plugin description
// the manager registers ({Name, New}), the dependencies a constructor receives, level-based
// reconcilers on de-duplicating rate-limited work queues, and the per-controller metrics.
//
// It lives apart from package controllers (which holds the Manager and the list of built-in
// plugins) so that the built-in controllers can import it without an import cycle.
package framework
