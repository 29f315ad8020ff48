package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/nodeagent/runtime"
)

// volumeRefresh is how often configMap, secret and downward API volumes
// are rewritten from the API, as the kubelet's sync period.
const volumeRefresh = time.Minute

func volumeDir(dataDir string, pod *corev1.Pod, name string) string {
	return filepath.Join(podDir(dataDir, pod.UID), "volumes", name)
}

// setupVolumes creates or refreshes every volume of the pod.
func (a *Agent) setupVolumes(ctx context.Context, pod *corev1.Pod) error {
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if err := a.setupVolume(ctx, pod, v); err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
	}
	return nil
}

func (a *Agent) setupVolume(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) error {
	dir := volumeDir(a.cfg.DataDir, pod, v.Name)
	switch {
	case v.EmptyDir != nil:
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			return err
		}
		if v.EmptyDir.Medium == corev1.StorageMediumMemory {
			opts := "mode=1777"
			if v.EmptyDir.SizeLimit != nil && !v.EmptyDir.SizeLimit.IsZero() {
				opts += ",size=" + strconv.FormatInt(v.EmptyDir.SizeLimit.Value(), 10)
			}
			return ensureTmpfs(dir, opts)
		}
		return nil
	case v.HostPath != nil:
		return checkHostPath(v.HostPath)
	case v.ConfigMap != nil:
		files, err := a.configMapFiles(ctx, pod.UID, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, v.ConfigMap.DefaultMode)
		if err != nil {
			return err
		}
		return writeAtomic(dir, files)
	case v.Secret != nil:
		files, err := a.secretFiles(ctx, pod.UID, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, v.Secret.DefaultMode)
		if err != nil {
			return err
		}
		// Secrets live in memory only, as the kubelet keeps them.
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		if err := ensureTmpfs(dir, "mode=0750"); err != nil {
			return err
		}
		return writeAtomic(dir, files)
	case v.DownwardAPI != nil:
		files, err := a.downwardFiles(pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
		if err != nil {
			return err
		}
		return writeAtomic(dir, files)
	case v.Projected != nil:
		files := map[string]fileData{}
		for _, src := range v.Projected.Sources {
			var got map[string]fileData
			var err error
			switch {
			case src.ConfigMap != nil:
				got, err = a.configMapFiles(ctx, pod.UID, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, v.Projected.DefaultMode)
			case src.Secret != nil:
				got, err = a.secretFiles(ctx, pod.UID, pod.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional, v.Projected.DefaultMode)
			case src.DownwardAPI != nil:
				got, err = a.downwardFiles(pod, src.DownwardAPI.Items, v.Projected.DefaultMode)
			case src.ServiceAccountToken != nil:
				got, err = a.tokenFiles(ctx, pod, src.ServiceAccountToken)
			}
			if err != nil {
				return err
			}
			for k, f := range got {
				files[k] = f
			}
		}
		return writeAtomic(dir, files)
	}
	return fmt.Errorf("unsupported volume type (emptyDir, hostPath, configMap, secret, downwardAPI and projected are)")
}

type fileData struct {
	data []byte
	mode os.FileMode
}

func fileMode(item *int32, def *int32) os.FileMode {
	switch {
	case item != nil:
		return os.FileMode(*item)
	case def != nil:
		return os.FileMode(*def)
	}
	return 0o644
}

// keyFiles turns data keys into files, all of them or the listed items.
func keyFiles(data map[string][]byte, items []corev1.KeyToPath, def *int32, optional bool, what string) (map[string]fileData, error) {
	out := map[string]fileData{}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = fileData{v, fileMode(nil, def)}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s has no key %q", what, it.Key)
		}
		out[it.Path] = fileData{v, fileMode(it.Mode, def)}
	}
	return out, nil
}

func (a *Agent) configMapFiles(ctx context.Context, uid types.UID, ns, name string, items []corev1.KeyToPath, optional *bool, def *int32) (map[string]fileData, error) {
	cm, err := a.objects.configMap(ctx, uid, ns, name)
	if apierrors.IsNotFound(err) && ptrTrue(optional) {
		return map[string]fileData{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("configmap %q: %w", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, def, ptrTrue(optional), "configmap "+name)
}

func (a *Agent) secretFiles(ctx context.Context, uid types.UID, ns, name string, items []corev1.KeyToPath, optional *bool, def *int32) (map[string]fileData, error) {
	s, err := a.objects.secret(ctx, uid, ns, name)
	if apierrors.IsNotFound(err) && ptrTrue(optional) {
		return map[string]fileData{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	return keyFiles(s.Data, items, def, ptrTrue(optional), "secret "+name)
}

func (a *Agent) downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, def *int32) (map[string]fileData, error) {
	out := map[string]fileData{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = podField(pod, it.FieldRef.FieldPath, pod.Status.PodIP, pod.Status.HostIP)
		case it.ResourceFieldRef != nil:
			c := findContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("no container %q", it.ResourceFieldRef.ContainerName)
			}
			v, err = a.resourceField(c, it.ResourceFieldRef)
		}
		if err != nil {
			return nil, err
		}
		out[it.Path] = fileData{[]byte(v), fileMode(it.Mode, def)}
	}
	return out, nil
}

// tokenFiles asks the API for a bound service account token (TokenRequest), or reuses the
// one it got before for the pod while that is fresh (the kubelet's token manager): the
// volume refresh every minute asked for a new token each time, a hundred requests a minute
// for a hundred pods. An apiserver that does not serve it yields no file rather than a pod
// that never starts.
func (a *Agent) tokenFiles(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) (map[string]fileData, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	key := tokenKey{uid: pod.UID, sa: sa, audience: src.Audience}
	if src.ExpirationSeconds != nil {
		key.expirationSeconds = *src.ExpirationSeconds
	}
	if tr := a.tokens.get(key, time.Now()); tr != nil {
		return map[string]fileData{src.Path: {[]byte(tr.Status.Token), 0o600}}, nil
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tr, err := a.cfg.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		a.log.Warn("service account token not available; the projected volume goes without it", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		return map[string]fileData{}, nil
	}
	a.tokens.put(key, tr, time.Now())
	return map[string]fileData{src.Path: {[]byte(tr.Status.Token), 0o600}}, nil
}

// writeAtomic publishes files in dir the way the kubelet's AtomicWriter
// does: a fresh timestamped directory, a "..data" symlink swapped to it by
// rename, and per-file symlinks through "..data". Readers in containers see
// either the old set or the new one, never a mix. Unchanged content is
// left alone.
func writeAtomic(dir string, files map[string]fileData) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if same(dir, files) {
		return nil
	}
	ts, err := os.MkdirTemp(dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	for p, f := range files {
		if strings.Contains(p, "..") || filepath.IsAbs(p) {
			return fmt.Errorf("invalid path %q", p)
		}
		full := filepath.Join(ts, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, f.data, f.mode.Perm()); err != nil {
			return err
		}
		if err := os.Chmod(full, f.mode.Perm()); err != nil {
			return err
		}
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Rename(tmpLink, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	top := map[string]bool{}
	for p := range files {
		first, _, _ := strings.Cut(p, "/")
		top[first] = true
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join("..data", name) {
			continue
		}
		os.RemoveAll(link)
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return err
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, "..") && !top[n] {
			os.RemoveAll(filepath.Join(dir, n)) // a key that went away
		}
	}
	if old != "" && old != filepath.Base(ts) {
		os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// same reports whether dir already holds exactly files.
func same(dir string, files map[string]fileData) bool {
	cur := filepath.Join(dir, "..data")
	if _, err := os.Stat(cur); err != nil {
		return false
	}
	n := 0
	err := filepath.WalkDir(cur+"/", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		rel, _ := filepath.Rel(cur, p)
		f, ok := files[rel]
		if !ok {
			return errors.New("extra")
		}
		data, err := os.ReadFile(p)
		info, ierr := d.Info()
		if err != nil || ierr != nil || string(data) != string(f.data) || info.Mode().Perm() != f.mode.Perm() {
			return errors.New("differs")
		}
		return nil
	})
	return err == nil && n == len(files)
}

// ensureTmpfs mounts a tmpfs at dir unless one is there.
func ensureTmpfs(dir, opts string) error {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) == nil && unix.Stat(filepath.Dir(dir), &parent) == nil && st.Dev != parent.Dev {
		return nil // already a mount point
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

func checkHostPath(hp *corev1.HostPathVolumeSource) error {
	t := corev1.HostPathUnset
	if hp.Type != nil {
		t = *hp.Type
	}
	info, err := os.Stat(hp.Path)
	switch t {
	case corev1.HostPathDirectoryOrCreate:
		if os.IsNotExist(err) {
			return os.MkdirAll(hp.Path, 0o755)
		}
	case corev1.HostPathFileOrCreate:
		if os.IsNotExist(err) {
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
	case corev1.HostPathDirectory:
		if err != nil || !info.IsDir() {
			return fmt.Errorf("hostPath %s is not a directory", hp.Path)
		}
	case corev1.HostPathFile:
		if err != nil || !info.Mode().IsRegular() {
			return fmt.Errorf("hostPath %s is not a file", hp.Path)
		}
	case corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev:
		if err != nil {
			return fmt.Errorf("hostPath %s: %w", hp.Path, err)
		}
	}
	return nil
}

// containerMounts maps the container's volumeMounts (and the pod's /etc
// files) to bind mounts.
func (w *podWorker) containerMounts(pod *corev1.Pod, c *corev1.Container) ([]runtime.Mount, error) {
	if w.a.hollow {
		return nil, nil
	}
	dir := podDir(w.a.cfg.DataDir, pod.UID)
	var out []runtime.Mount
	mounted := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		var vol *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == vm.Name {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol == nil {
			return nil, fmt.Errorf("volumeMount %q names no volume", vm.Name)
		}
		src := volumeDir(w.a.cfg.DataDir, pod, vm.Name)
		if vol.HostPath != nil {
			src = vol.HostPath.Path
		}
		ro := vm.ReadOnly || vol.ConfigMap != nil || vol.Secret != nil || vol.DownwardAPI != nil || vol.Projected != nil
		if vm.SubPath != "" {
			if strings.Contains(vm.SubPath, "..") || filepath.IsAbs(vm.SubPath) {
				return nil, fmt.Errorf("invalid subPath %q", vm.SubPath)
			}
			src = filepath.Join(src, vm.SubPath)
			if _, err := os.Stat(src); os.IsNotExist(err) {
				if err := os.MkdirAll(src, 0o755); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, runtime.Mount{Source: src, Destination: vm.MountPath, ReadOnly: ro})
		mounted[vm.MountPath] = true
	}
	etc := []runtime.Mount{
		{Source: filepath.Join(dir, "etc-hosts"), Destination: "/etc/hosts"},
		{Source: filepath.Join(dir, "etc-hostname"), Destination: "/etc/hostname"},
		{Source: filepath.Join(dir, "resolv.conf"), Destination: "/etc/resolv.conf"},
	}
	for _, m := range etc {
		if !mounted[m.Destination] {
			out = append(out, m)
		}
	}
	return out, nil
}

// refreshVolumesIn rewrites the pod's API-backed volumes once volumeRefresh
// has passed, and says when the next refresh is due.
func (w *podWorker) refreshVolumesIn(ctx context.Context, pod *corev1.Pod) time.Duration {
	if w.a.hollow || w.volSync.IsZero() {
		return 0
	}
	if d := volumeRefresh - time.Since(w.volSync); d > 0 {
		return d
	}
	if err := w.a.setupVolumes(ctx, pod); err != nil {
		w.a.log.Warn("refreshing volumes", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
	w.volSync = time.Now()
	return volumeRefresh
}
