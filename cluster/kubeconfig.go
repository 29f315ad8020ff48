package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// AdminUser is the identity in the admin kubeconfig: group system:masters is bound to
// cluster-admin, as in Kubernetes.
const AdminUser = "skiff-admin"

// writeAdminKubeconfig writes DIR/kubeconfig: one context per server (skiff-1, skiff-2,
// ...), the first current, with admin credentials.
func writeAdminKubeconfig(lc *LocalCluster, keys *Keys) error {
	cert, err := keys.Issue(CertRequest{CommonName: AdminUser, Groups: []string{"system:masters"}, Client: true, SerialSource: "admin"})
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.AuthInfos[AdminUser] = &clientcmdapi.AuthInfo{ClientCertificateData: cert.CertPEM, ClientKeyData: cert.KeyPEM}
	for _, p := range lc.Processes {
		if p.Role != "server" {
			continue
		}
		cfg.Clusters[p.Name] = &clientcmdapi.Cluster{Server: p.APIURL, CertificateAuthorityData: keys.CAPEM}
		cfg.Contexts[p.Name] = &clientcmdapi.Context{Cluster: p.Name, AuthInfo: AdminUser}
		if cfg.CurrentContext == "" {
			cfg.CurrentContext = p.Name
		}
	}
	return clientcmd.WriteToFile(*cfg, lc.Kubeconfig)
}

// writeNodeKubeconfig writes an agent's kubeconfig with its node identity
// system:node:<name> in group system:nodes, pointing at the first server.
func writeNodeKubeconfig(lc *LocalCluster, keys *Keys, p *Process) error {
	name := "system:node:" + p.Name
	cert, err := keys.Issue(CertRequest{CommonName: name, Groups: []string{"system:nodes"}, Client: true, SerialSource: name})
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.AuthInfos[p.Name] = &clientcmdapi.AuthInfo{ClientCertificateData: cert.CertPEM, ClientKeyData: cert.KeyPEM}
	for _, s := range lc.Processes {
		if s.Role == "server" {
			cfg.Clusters[s.Name] = &clientcmdapi.Cluster{Server: s.APIURL, CertificateAuthorityData: keys.CAPEM}
			cfg.Contexts[s.Name] = &clientcmdapi.Context{Cluster: s.Name, AuthInfo: p.Name}
			if cfg.CurrentContext == "" {
				cfg.CurrentContext = s.Name
			}
		}
	}
	if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, filepath.Join(p.DataDir, "kubeconfig"))
}

// RestConfig loads a kubeconfig's given context (empty: current) as a client-go config.
func RestConfig(kubeconfig, context string) (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
	over := &clientcmd.ConfigOverrides{CurrentContext: context}
	c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, over).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("cluster: kubeconfig %s: %w", kubeconfig, err)
	}
	return c, nil
}

// KubeconfigServers lists the API URLs of every cluster a kubeconfig names, the current
// context's first.
func KubeconfigServers(kubeconfig string) ([]string, error) {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("cluster: kubeconfig %s: %w", kubeconfig, err)
	}
	var out []string
	if c, ok := cfg.Contexts[cfg.CurrentContext]; ok {
		if cl, ok := cfg.Clusters[c.Cluster]; ok {
			out = append(out, cl.Server)
		}
	}
	names := make([]string, 0, len(cfg.Clusters))
	for n := range cfg.Clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if s := cfg.Clusters[n].Server; !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// RestConfigFor builds a client-go config from in-process API access.
func RestConfigFor(a APIAccess) *rest.Config {
	return &rest.Config{
		Host: a.URL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: a.CAPEM, CertData: a.Cert.CertPEM, KeyData: a.Cert.KeyPEM,
		},
		QPS:   1000,
		Burst: 2000,
	}
}

// PreferProtobuf makes a typed client send and ask for protobuf, falling back to JSON for
// what has no protobuf form: the kubelet's --kube-api-content-type default. Decoding a pod
// list or watch event costs a fraction of JSON's, which is much of an agent's steady work.
// Dynamic and metadata clients set their own (JSON) content types.
func PreferProtobuf(rc *rest.Config) *rest.Config {
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return rc
}

// WriteNodeKubeconfig writes the kubeconfig an agent builds from its join answer.
func WriteNodeKubeconfig(path, apiURL, nodeName string, j *JoinResponse) error {
	cfg := clientcmdapi.NewConfig()
	cfg.AuthInfos[nodeName] = &clientcmdapi.AuthInfo{ClientCertificateData: j.CertPEM, ClientKeyData: j.KeyPEM}
	cfg.Clusters["skiff"] = &clientcmdapi.Cluster{Server: apiURL, CertificateAuthorityData: j.CAPEM}
	cfg.Contexts["skiff"] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: nodeName}
	cfg.CurrentContext = "skiff"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}
