package apiserver

import (
	"crypto/subtle"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// authenticate identifies the caller by verified client certificate (CN user, O groups)
// or static bearer token. Anonymous requests get 401.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := s.identify(r)
		if u == nil {
			writeStatus(w, toStatus(apierrors.NewUnauthorized("Unauthorized"), groupResourceNone, ""))
			return
		}
		next.ServeHTTP(w, r.WithContext(withUser(r.Context(), u)))
	})
}

func (s *Server) identify(r *http.Request) *UserInfo {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		cert := r.TLS.VerifiedChains[0][0]
		if cert.Subject.CommonName != "" {
			return withAuthenticated(&UserInfo{Name: cert.Subject.CommonName, Groups: append([]string(nil), cert.Subject.Organization...)})
		}
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		token := strings.TrimSpace(h[7:])
		for t, u := range s.cfg.Tokens {
			// Constant-time per candidate: the lookup leaks no prefix of a valid token.
			if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
				u := u
				u.Groups = append([]string(nil), u.Groups...)
				return withAuthenticated(&u)
			}
		}
		if strings.Count(token, ".") == 2 {
			return s.identifyServiceAccount(r.Context(), token)
		}
	}
	return nil
}

// withAuthenticated adds the group every authenticated user has, as Kubernetes does.
func withAuthenticated(u *UserInfo) *UserInfo {
	if !contains(u.Groups, "system:authenticated") {
		u.Groups = append(u.Groups, "system:authenticated")
	}
	return u
}
