package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// APIOptions configure RunAPI (`skiff bench api`).
type APIOptions struct {
	Out      string // result.json, summary.md and the systems' data go here
	Binary   string // the skiff binary whose servers are measured
	Peer     string // "none"; "k8s-reference" is not built yet
	Duration time.Duration
	// Pods is the size of the listed namespace; Watchers the fan-out steps; WatchRate their
	// writes per second; ListRepeats the lists per mode.
	Pods        int
	Watchers    []int
	WatchRate   int
	ListRepeats int
	PacedRate   int    // writes/s of the paced create row (issue 3's "at 500 writes/s")
	Command     string // recorded in the report
	Progress    io.Writer
}

func (o *APIOptions) defaults() {
	if o.Peer == "" {
		o.Peer = "none"
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Pods == 0 {
		o.Pods = 10000
	}
	if o.Watchers == nil {
		o.Watchers = []int{100, 1000}
	}
	if o.WatchRate == 0 {
		o.WatchRate = 100
	}
	if o.PacedRate == 0 {
		o.PacedRate = 500
	}
	if o.ListRepeats == 0 {
		o.ListRepeats = 10
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// RunAPI measures each system in turn (skiff; with a peer, the upstream reference too) and
// writes Out/result.json and Out/summary.md. Every process it starts is stopped before it
// returns, also on error or interruption.
func RunAPI(ctx context.Context, o APIOptions) (*APIReport, error) {
	o.defaults()
	if o.Out == "" || o.Binary == "" {
		return nil, errors.New("bench api: Out and Binary are required")
	}
	var systems []apiSystem
	systems = append(systems, &skiffSystem{dir: filepath.Join(o.Out, "skiff"), binary: o.Binary, progress: o.Progress})
	switch o.Peer {
	case "none":
	case "k8s-reference":
		return nil, errors.New("bench api: --peer k8s-reference is not implemented yet; use --peer none")
	default:
		return nil, fmt.Errorf("bench api: unknown peer %q", o.Peer)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	rep := &APIReport{Command: o.Command}
	for _, sys := range systems {
		rows, err := runAPISystem(ctx, sys, o)
		rep.Results = append(rep.Results, rows...)
		if err != nil {
			rep.Results = append(rep.Results, apiErrorRow(sys.Name(), "small", "start", 0, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err := rep.WriteFiles(o.Out); err != nil {
		return rep, err
	}
	return rep, ctx.Err()
}

func runAPISystem(ctx context.Context, sys apiSystem, o APIOptions) (rows []APIResult, err error) {
	name, step := sys.Name(), "small"
	say := func(f string, a ...any) { fmt.Fprintf(o.Progress, "bench api: "+f+"\n", a...) }
	say("%s: starting", name)
	defer func() {
		say("%s: stopping", name)
		if serr := sys.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	cfgs, err := sys.Start(ctx)
	if err != nil {
		return nil, err
	}
	admin, err := apiClients(cfgs, len(cfgs))
	if err != nil {
		return nil, err
	}
	for _, ns := range []string{"bench-cm", "bench-list", "bench-watch"} {
		if err := ensureNamespace(ctx, admin[0], ns); err != nil {
			return nil, fmt.Errorf("namespace %s: %w", ns, err)
		}
	}

	for _, clients := range []int{1, 64} {
		say("%s: configmaps create/get/update/delete, %d client(s), %s each", name, clients, o.Duration)
		cs, err := apiClients(cfgs, clients)
		if err != nil {
			return rows, err
		}
		res := runConfigMaps(ctx, cs, "bench-cm", o.Duration)
		for _, wl := range []string{"cm-create", "cm-get", "cm-update", "cm-delete"} {
			rows = append(rows, apiRow(name, step, wl, clients, res[wl], true))
		}
	}

	say("%s: configmap creates paced at %d/s by 64 clients for %s", name, o.PacedRate, o.Duration)
	if cs, err := apiClients(cfgs, 64); err == nil {
		row := apiRow(name, step, "cm-create", 64, runPacedCreates(ctx, cs, "bench-cm", o.PacedRate, o.Duration), true)
		row.Note = fmt.Sprintf("paced at %d writes/s; latency from when each write was due", o.PacedRate)
		rows = append(rows, row)
	}

	say("%s: creating %d pods", name, o.Pods)
	if err := createPods(ctx, admin, "bench-list", o.Pods, o.Progress); err != nil {
		rows = append(rows, apiErrorRow(name, step, "list-pods", 1, err))
	} else {
		for _, m := range []struct{ workload, mode string }{{"list-pods", ""}, {"list-pods-rv0", "0"}, {"list-pods-paged", "paged"}} {
			say("%s: %s, %d lists of %d pods", name, m.workload, o.ListRepeats, o.Pods)
			s := runLists(ctx, admin[1%len(admin)], "bench-list", m.mode, o.Pods, o.ListRepeats)
			row := apiRow(name, step, m.workload, 1, s, false)
			row.Note = fmt.Sprintf("%d pods", o.Pods)
			rows = append(rows, row)
		}
	}

	for _, n := range o.Watchers {
		say("%s: watch fan-out, %d watchers, %d writes/s for %s", name, n, o.WatchRate, o.Duration)
		cs, err := watchClients(cfgs, n)
		if err != nil {
			return rows, err
		}
		s, err := runWatchFanout(ctx, cs, admin[0], "bench-watch", n, o.WatchRate, o.Duration)
		if err != nil {
			rows = append(rows, apiErrorRow(name, step, "watch", n, err))
			continue
		}
		row := apiRow(name, step, "watch", n, s, false)
		row.Note = fmt.Sprintf("%d watchers, %d writes/s; delay from write start", n, o.WatchRate)
		rows = append(rows, row)
	}

	rss, peak, err := summedMemMB(sys.PIDs())
	if err != nil {
		rows = append(rows, apiErrorRow(name, step, "rss", 0, err))
	} else {
		rows = append(rows, APIResult{System: name, Step: step, Workload: "rss", RSSMB: f64(peak),
			Note: fmt.Sprintf("summed peak (VmHWM) of %d servers; steady %.0f MB, with %d pods", len(sys.PIDs()), rss, o.Pods)})
	}
	return rows, ctx.Err()
}

// watchClients gives each group of up to 100 watchers on an endpoint its own connection,
// as separate programs would have, rather than a thousand streams on one.
func watchClients(cfgs []*rest.Config, n int) ([]kubernetes.Interface, error) {
	type key struct{ group, endpoint int }
	byKey := map[key]kubernetes.Interface{}
	out := make([]kubernetes.Interface, n)
	for i := range out {
		k := key{i / 100, i % len(cfgs)}
		if byKey[k] == nil {
			c := rest.CopyConfig(cfgs[k.endpoint])
			// A Dial of its own makes client-go build this clientset its own transport.
			c.Dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
			cs, err := apiClients([]*rest.Config{c}, 1)
			if err != nil {
				return nil, err
			}
			byKey[k] = cs[0]
		}
		out[i] = byKey[k]
	}
	return out, nil
}
