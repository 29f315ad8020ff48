package apiserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Service account tokens are JWTs signed with ES256 by a key every server of the cluster
// holds (Config.ServiceAccountKey), in the shape kube-apiserver gives bound tokens: the
// issuer, the audiences, an expiry, and the service account and pod they are bound to. A
// token stops working when its service account or pod is deleted or replaced.

const (
	// DefaultIssuer is kube-apiserver's default --service-account-issuer, also its default
	// API audience.
	DefaultIssuer      = "https://kubernetes.default.svc.cluster.local"
	minTokenExpiration = 10 * time.Minute
	maxTokenExpiration = 48 * time.Hour
)

type saClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  []string `json:"aud"`
	Expiry    int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	ID        string   `json:"jti"`
	K8s       struct {
		Namespace      string `json:"namespace"`
		ServiceAccount ref    `json:"serviceaccount"`
		Pod            *ref   `json:"pod,omitempty"`
		Node           *ref   `json:"node,omitempty"`
		Secret         *ref   `json:"secret,omitempty"`
		WarnAfter      *int64 `json:"warnafter,omitempty"`
	} `json:"kubernetes.io"`
}

type ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

var b64 = base64.RawURLEncoding

func (s *Server) signToken(c *saClaims) (string, error) {
	key := s.cfg.ServiceAccountKey
	if key == nil {
		return "", errors.New("no service account signing key")
	}
	kid := keyID(&key.PublicKey)
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": kid})
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signing := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signing))
	r, sg, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sg.FillBytes(sig[32:])
	return signing + "." + b64.EncodeToString(sig), nil
}

func keyID(pub *ecdsa.PublicKey) string {
	der, _ := pub.Bytes()
	sum := sha256.Sum256(der)
	return b64.EncodeToString(sum[:16])
}

// parseToken checks a JWT's signature and time bounds; it returns nil for anything that is
// not a valid token of this cluster.
func (s *Server) parseToken(token string, now time.Time) *saClaims {
	key := s.cfg.ServiceAccountKey
	parts := strings.Split(token, ".")
	if key == nil || len(parts) != 3 {
		return nil
	}
	var header struct {
		Alg string `json:"alg"`
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &header) != nil || header.Alg != "ES256" {
		return nil
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(&key.PublicKey, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var c saClaims
	if json.Unmarshal(pb, &c) != nil || c.Issuer != DefaultIssuer {
		return nil
	}
	if t := now.Unix(); t >= c.Expiry || t < c.NotBefore-60 {
		return nil
	}
	return &c
}

// identifyServiceAccount authenticates a bound service account token: a valid signature,
// the API audience, and its service account and bound pod still the ones it was issued for.
func (s *Server) identifyServiceAccount(ctx context.Context, token string) *UserInfo {
	c := s.parseToken(token, s.cfg.Now())
	if c == nil || !slices.Contains(c.Audience, DefaultIssuer) {
		return nil
	}
	ns, sa := c.K8s.Namespace, c.K8s.ServiceAccount
	if c.Subject != "system:serviceaccount:"+ns+":"+sa.Name {
		return nil
	}
	rs := s.reg.lookup("", "v1", "serviceaccounts")
	obj, _, err := s.objs.get(ctx, rs, ns, sa.Name, true)
	if err != nil || string(obj.(*corev1.ServiceAccount).UID) != sa.UID {
		return nil
	}
	if p := c.K8s.Pod; p != nil {
		obj, _, err := s.objs.get(ctx, s.reg.lookup("", "v1", "pods"), ns, p.Name, true)
		if err != nil || string(obj.(*corev1.Pod).UID) != p.UID || obj.(*corev1.Pod).DeletionTimestamp != nil {
			return nil
		}
	}
	return withAuthenticated(&UserInfo{Name: c.Subject, UID: sa.UID, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}})
}

// handleTokenRequest serves serviceaccounts/token: a bound token for the service account,
// optionally bound to a pod (which must use that service account) or a secret. A node may
// ask only for the service accounts of pods bound to it (the Node authorizer's rule).
func (s *Server) handleTokenRequest(w http.ResponseWriter, r *http.Request, q *request) {
	fail := func(err error) { writeError(w, err, q.gr(), q.ri.Name) }
	data, err := s.readBody(r)
	if err != nil {
		fail(err)
		return
	}
	dec, err := s.codecs.bodyDecoder(r, false)
	if err != nil {
		fail(err)
		return
	}
	gvk := authenticationv1.SchemeGroupVersion.WithKind("TokenRequest")
	obj, _, err := dec.Decode(data, &gvk, &authenticationv1.TokenRequest{})
	tr, ok := obj.(*authenticationv1.TokenRequest)
	if err != nil || !ok {
		fail(apierrors.NewBadRequest(fmt.Sprint("decoding TokenRequest: ", err)))
		return
	}
	now := s.cfg.Now()
	exp := time.Hour
	if tr.Spec.ExpirationSeconds != nil {
		exp = time.Duration(*tr.Spec.ExpirationSeconds) * time.Second
	}
	trGK := gvk.GroupKind()
	if exp < minTokenExpiration {
		fail(apierrors.NewInvalid(trGK, q.ri.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "expirationSeconds"), int64(exp/time.Second), "may not specify a duration less than 10 minutes")}))
		return
	}
	exp = min(exp, maxTokenExpiration)
	auds := tr.Spec.Audiences
	if len(auds) == 0 {
		auds = []string{DefaultIssuer}
	}
	saObj, _, err := s.objs.get(r.Context(), q.rs, q.ns, q.ri.Name, false)
	if err != nil {
		fail(toStatusErr(err, q))
		return
	}
	sa := saObj.(*corev1.ServiceAccount)
	c := &saClaims{Issuer: DefaultIssuer, Subject: "system:serviceaccount:" + q.ns + ":" + sa.Name, Audience: auds,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(exp).Unix(), ID: uuid.NewString()}
	c.K8s.Namespace, c.K8s.ServiceAccount = q.ns, ref{Name: sa.Name, UID: string(sa.UID)}
	node, isNode := nodeName(q.user)
	if b := tr.Spec.BoundObjectRef; b != nil {
		switch b.Kind {
		case "Pod":
			pobj, _, err := s.objs.get(r.Context(), s.reg.lookup("", "v1", "pods"), q.ns, b.Name, false)
			if err != nil {
				fail(apierrors.NewInvalid(trGK, q.ri.Name, field.ErrorList{field.NotFound(field.NewPath("spec", "boundObjectRef"), b.Name)}))
				return
			}
			pod := pobj.(*corev1.Pod)
			if b.UID != "" && b.UID != pod.UID {
				fail(apierrors.NewConflict(q.gr(), q.ri.Name, fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record (%s); the object might have been deleted and then recreated", b.UID, pod.UID)))
				return
			}
			if sa := pod.Spec.ServiceAccountName; sa != q.ri.Name && !(sa == "" && q.ri.Name == "default") {
				fail(apierrors.NewBadRequest(fmt.Sprintf("cannot bind a token for service account %q to pod %q, which uses %q", q.ri.Name, pod.Name, sa)))
				return
			}
			if isNode && pod.Spec.NodeName != node {
				fail(apierrors.NewForbidden(q.gr(), q.ri.Name, fmt.Errorf("node %q may only request tokens for pods bound to it", node)))
				return
			}
			c.K8s.Pod = &ref{Name: pod.Name, UID: string(pod.UID)}
			if pod.Spec.NodeName != "" {
				c.K8s.Node = &ref{Name: pod.Spec.NodeName}
			}
		case "Secret":
			if isNode {
				fail(apierrors.NewForbidden(q.gr(), q.ri.Name, fmt.Errorf("node %q may only request tokens bound to its pods", node)))
				return
			}
			c.K8s.Secret = &ref{Name: b.Name, UID: string(b.UID)}
		default:
			fail(apierrors.NewBadRequest(fmt.Sprintf("cannot bind a token to a %q; only Pod and Secret", b.Kind)))
			return
		}
	} else if isNode {
		fail(apierrors.NewForbidden(q.gr(), q.ri.Name, fmt.Errorf("node %q may only request tokens bound to its pods", node)))
		return
	}
	token, err := s.signToken(c)
	if err != nil {
		fail(apierrors.NewInternalError(err))
		return
	}
	out := tr.DeepCopy()
	out.TypeMeta = metav1.TypeMeta{Kind: "TokenRequest", APIVersion: "authentication.k8s.io/v1"}
	out.Name, out.Namespace, out.CreationTimestamp = sa.Name, q.ns, metav1.NewTime(now)
	out.Spec.Audiences = auds
	secs := int64(exp / time.Second)
	out.Spec.ExpirationSeconds = &secs
	out.Status = authenticationv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.NewTime(time.Unix(c.Expiry, 0))}
	writeJSON(w, http.StatusCreated, "application/json", out)
}
