package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sync"
	"time"
)

// The join endpoint, served on every server's API port before authentication: an agent
// proves it holds the agent token and receives its node certificate (the kubelet TLS
// bootstrap, in one step).
const joinPath = "/skiff/v1"

type joinRequest struct {
	Name     string `json:"name"`
	AgentKey string `json:"agentKey"` // hex
}

// JoinResponse is what an agent receives.
type JoinResponse struct {
	CAPEM   []byte `json:"caPEM"`
	CertPEM []byte `json:"certPEM"` // system:node:<name>, group system:nodes
	KeyPEM  []byte `json:"keyPEM"`
	// GossipSeeds are the live servers' gossip addresses, for the agent to join.
	GossipSeeds []string `json:"gossipSeeds,omitempty"`
}

// nodeNameRE is compiled on first use, not at package initialization: the counted
// repetition makes a large program (165 KB, 0.5-4 ms), and every container's init process
// (the skiff binary re-executed) runs this package's initializers without ever using it.
var nodeNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`) })

func (s *Server) joinHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+joinPath+"/ca", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.keys.CAPEM)
	})
	mux.HandleFunc("POST "+joinPath+"/join", func(w http.ResponseWriter, r *http.Request) {
		var req joinRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			http.Error(w, "malformed join request", http.StatusBadRequest)
			return
		}
		key, err := hex.DecodeString(req.AgentKey)
		if err != nil || !s.keys.CheckAgentKey(key) {
			s.log.Warn("refused a join with a wrong agent token", "node", req.Name, "remote", r.RemoteAddr)
			http.Error(w, "wrong agent token", http.StatusUnauthorized)
			return
		}
		if !nodeNameRE().MatchString(req.Name) {
			http.Error(w, "invalid node name (DNS-1123 subdomain)", http.StatusBadRequest)
			return
		}
		cn := "system:node:" + req.Name
		cert, err := s.keys.Issue(CertRequest{CommonName: cn, Groups: []string{"system:nodes"}, Client: true, SerialSource: cn})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.log.Info("issued a node certificate", "node", req.Name)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(JoinResponse{CAPEM: s.keys.CAPEM, CertPEM: cert.CertPEM, KeyPEM: cert.KeyPEM, GossipSeeds: s.serverGossipAddrs()})
	})
	return mux
}

func (s *Server) serverGossipAddrs() []string {
	if s.gsp == nil {
		return nil
	}
	var out []string
	for _, m := range s.gsp.members() {
		if m.Role == "server" && m.Alive {
			out = append(out, m.GossipAddr)
		}
	}
	return out
}

// Join gets a node certificate from the server at apiURL with an agent token. It first
// fetches the server's CA without trusting it, checks its public-key hash against the one in
// the token, and only then talks to the server, verifying it against that CA.
func Join(ctx context.Context, apiURL, token, nodeName string) (*JoinResponse, error) {
	t, err := ParseAgentToken(token)
	if err != nil {
		return nil, err
	}
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	caPEM, err := fetch(ctx, insecure, http.MethodGet, apiURL+joinPath+"/ca", nil)
	if err != nil {
		return nil, fmt.Errorf("cluster: fetch the CA from %s: %w", apiURL, err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil {
		return nil, errors.New("cluster: the server sent no CA certificate")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	if spkiHash(ca) != t.CAHash {
		return nil, fmt.Errorf("cluster: the server's CA (hash %s) is not the one in the token (%s): refusing to join", spkiHash(ca), t.CAHash)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	verified := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body, _ := json.Marshal(joinRequest{Name: nodeName, AgentKey: hex.EncodeToString(t.AgentKey)})
	out, err := fetch(ctx, verified, http.MethodPost, apiURL+joinPath+"/join", body)
	if err != nil {
		return nil, fmt.Errorf("cluster: join: %w", err)
	}
	var resp JoinResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("cluster: join answer: %w", err)
	}
	return &resp, nil
}

func fetch(ctx context.Context, hc *http.Client, method, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}
