// Package scheduler is skiff's kube-scheduler: it binds each pending pod (schedulerName
// "default-scheduler") to a node chosen by kube-scheduler's default filters and scores.
//
// Decisions are pure functions over NodeInfo values (filter.go, score.go, schedule.go);
// the controller (scheduler.go) feeds them from an informer-backed cache with assumed pods
// (cache.go) and binds through pods/binding in the background (bind.go), so the next pod is
// scheduled while earlier binds are in flight.
package scheduler
