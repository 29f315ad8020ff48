package cluster

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// NewServerToken returns a fresh random server token.
func NewServerToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "skiff-" + hex.EncodeToString(b)
}

// AgentToken is what an agent joins with: the CA's public-key hash, which the agent checks
// the server against before trusting it (as kubeadm's discovery-token-ca-cert-hash and k3s's
// K10 tokens do), and the agent key, which the server checks before issuing a node
// certificate.
type AgentToken struct {
	CAHash   string
	AgentKey []byte
}

const agentTokenPrefix = "skiff-agent::"

// AgentToken renders the agent token of these keys.
func (k *Keys) AgentToken() string {
	return fmt.Sprintf("%s%s::%s", agentTokenPrefix, k.CAHash, hex.EncodeToString(k.AgentKey))
}

// ParseAgentToken parses an agent token.
func ParseAgentToken(s string) (*AgentToken, error) {
	rest, ok := strings.CutPrefix(s, agentTokenPrefix)
	parts := strings.Split(rest, "::")
	if !ok || len(parts) != 2 || len(parts[0]) != 64 {
		return nil, errors.New("cluster: malformed agent token (want skiff-agent::<ca-hash>::<key>)")
	}
	key, err := hex.DecodeString(parts[1])
	if err != nil || len(key) != 32 {
		return nil, errors.New("cluster: malformed agent token key")
	}
	if _, err := hex.DecodeString(parts[0]); err != nil {
		return nil, errors.New("cluster: malformed agent token CA hash")
	}
	return &AgentToken{CAHash: parts[0], AgentKey: key}, nil
}

// CheckAgentKey reports whether key is this cluster's agent key, in constant time.
func (k *Keys) CheckAgentKey(key []byte) bool {
	return subtle.ConstantTimeCompare(key, k.AgentKey) == 1
}
