package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultEtcd is where Debian's etcd-server package installs etcd.
const DefaultEtcd = "/usr/bin/etcd"

// EtcdClientName says which client the benchmark drives etcd with.
const EtcdClientName = "go.etcd.io/etcd/client/v3 (gRPC)"

// EnsureEtcd makes sure the etcd binary exists. When Debian's is missing and we are root, it
// installs the etcd-server package with apt-get, saying so on progress.
func EnsureEtcd(ctx context.Context, bin string, progress io.Writer) error {
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	if bin != DefaultEtcd || os.Geteuid() != 0 {
		return fmt.Errorf("bench: etcd not found at %s (install Debian's etcd-server: apt-get install -y etcd-server)", bin)
	}
	fmt.Fprintf(progress, "etcd not found at %s: installing Debian's etcd-server (apt-get install -y etcd-server)\n", bin)
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "etcd-server")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = progress, progress
		return cmd.Run()
	}
	if err := install(); err != nil {
		// A fresh machine may have no package lists yet.
		fmt.Fprintln(progress, "apt-get install failed; running apt-get update and retrying")
		up := exec.CommandContext(ctx, "apt-get", "update")
		up.Stdout, up.Stderr = progress, progress
		if err := errors.Join(up.Run(), install()); err != nil {
			return fmt.Errorf("bench: install etcd-server: %w", err)
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("bench: etcd-server installed but %s is missing: %w", bin, err)
	}
	return nil
}

// EtcdVersion returns the first line of `etcd --version`.
func EtcdVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(strings.TrimPrefix(line, "etcd Version:"))
}

// etcdCluster is three etcd processes, each with its own data directory, on loopback, with
// etcd's defaults otherwise (fsync on every commit included).
type etcdCluster struct {
	clientURLs []string
	procs      procs
}

func startEtcd(ctx context.Context, bin, root string, n int) (_ *etcdCluster, err error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	addrs, err := freeAddrs(2 * n)
	if err != nil {
		return nil, err
	}
	c := &etcdCluster{}
	var initial []string
	for i := range n {
		c.clientURLs = append(c.clientURLs, "http://"+addrs[2*i])
		initial = append(initial, fmt.Sprintf("e%d=http://%s", i+1, addrs[2*i+1]))
	}
	defer func() {
		if err != nil {
			c.procs.stop()
		}
	}()
	token := fmt.Sprintf("skiff-bench-%d", time.Now().UnixNano())
	for i := range n {
		name := fmt.Sprintf("e%d", i+1)
		peer := "http://" + addrs[2*i+1]
		args := []string{
			"--name", name,
			"--data-dir", filepath.Join(root, name),
			"--listen-client-urls", c.clientURLs[i], "--advertise-client-urls", c.clientURLs[i],
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", token,
		}
		p, err := startProc("etcd "+name, filepath.Join(root, name+".log"), bin, args...)
		if err != nil {
			return nil, err
		}
		c.procs = append(c.procs, p)
	}
	if err := c.waitLeader(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

// waitLeader waits until every member reports the same leader and a linearizable read
// through each member succeeds.
func (c *etcdCluster) waitLeader(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := c.procs.checkAlive(); err != nil {
			return err
		}
		if last = c.healthy(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: etcd cluster has no leader after %v: %w", timeout, last)
}

func (c *etcdCluster) healthy(ctx context.Context) error {
	var leader uint64
	for _, u := range c.clientURLs {
		cli, err := newEtcdClient(ctx, u)
		if err != nil {
			return err
		}
		err = func() error {
			defer cli.Close()
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			st, err := cli.Status(sctx, u)
			if err != nil {
				return err
			}
			if st.Leader == 0 || (leader != 0 && st.Leader != leader) {
				return fmt.Errorf("%s sees leader %x", u, st.Leader)
			}
			leader = st.Leader
			_, err = cli.Get(sctx, "bench/health")
			return err
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// Leader returns the index of the leading member.
func (c *etcdCluster) Leader(ctx context.Context) (int, error) {
	for i, u := range c.clientURLs {
		cli, err := newEtcdClient(ctx, u)
		if err != nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, u)
		cancel()
		cli.Close()
		if err == nil && st.Header != nil && st.Leader == st.Header.MemberId {
			return i, nil
		}
	}
	return 0, fmt.Errorf("bench: no etcd member leads")
}

func (c *etcdCluster) memberName(i int) string { return fmt.Sprintf("e%d", i+1) }

func (c *etcdCluster) stop() { c.procs.stop() }

func (c *etcdCluster) Name() string { return SystemEtcd }
func (c *etcdCluster) Members() int { return len(c.clientURLs) }

func (c *etcdCluster) Dial(ctx context.Context, member int) (client, error) {
	cli, err := newEtcdClient(ctx, c.clientURLs[member%len(c.clientURLs)])
	if err != nil {
		return nil, err
	}
	return &etcdClient{cli: cli}, nil
}

// newEtcdClient connects to one endpoint only: a client pinned to its member, as the
// workloads spread clients over members themselves.
func newEtcdClient(ctx context.Context, endpoint string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		Context:     ctx,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("bench: etcd client for %s: %w", endpoint, err)
	}
	return cli, nil
}

// etcdClient adapts clientv3 to the workloads' client.
type etcdClient struct{ cli *clientv3.Client }

func (c *etcdClient) Put(ctx context.Context, key string, value []byte) error {
	_, err := c.cli.Put(ctx, key, string(value))
	return err
}

// Get is linearizable: clientv3 reads are unless WithSerializable is given.
func (c *etcdClient) Get(ctx context.Context, key string) error {
	_, err := c.cli.Get(ctx, key)
	return err
}

func (c *etcdClient) Watch(ctx context.Context, prefix string, ready func(), event func(key string)) error {
	wch := c.cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	for resp := range wch {
		if err := resp.Err(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if resp.Created {
			ready()
		}
		for _, ev := range resp.Events {
			event(string(ev.Kv.Key))
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("etcd watch channel closed")
}

func (c *etcdClient) Close() error { return c.cli.Close() }
