// Package job is the Job controller: pods up to parallelism until completions succeed,
// failures counted exactly once through the job-tracking finalizer and
// status.uncountedTerminatedPods, backoffLimit (with restarts under OnFailure) and
// activeDeadlineSeconds failing the Job, exponential back-off between failed pods, suspend,
// and the conditions `kubectl wait --for=condition=complete` reads. Behaviour follows
// Kubernetes' pkg/controller/job for NonIndexed Jobs; Indexed completion mode and pod
// failure/success policies are not implemented (the Job gets a warning event).
package job
