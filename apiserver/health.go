package apiserver

import (
	"net/http"
	"runtime"
)

// serveLive says the process serves HTTP.
func (s *Server) serveLive(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok"))
}

// serveHealth (/healthz, /readyz) fails while no leader is known: writes and linearizable
// reads would not succeed.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if id, _ := s.cfg.Store.Leader(); id == "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("[-]raftstore-leader failed: no leader\nreadyz check failed"))
		return
	}
	_, _ = w.Write([]byte("ok"))
}

// versionInfo is kube-apiserver's /version; kubectl's dispatcher picks its v1.32 client by
// major/minor.
type versionInfo struct {
	Major        string `json:"major"`
	Minor        string `json:"minor"`
	GitVersion   string `json:"gitVersion"`
	GitCommit    string `json:"gitCommit"`
	GitTreeState string `json:"gitTreeState"`
	BuildDate    string `json:"buildDate"`
	GoVersion    string `json:"goVersion"`
	Compiler     string `json:"compiler"`
	Platform     string `json:"platform"`
}

func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, "application/json", versionInfo{
		Major: "1", Minor: "32", GitVersion: "v1.32.0-skiff", GitTreeState: "clean",
		BuildDate: "1970-01-01T00:00:00Z", GoVersion: runtime.Version(), Compiler: runtime.Compiler,
		Platform: runtime.GOOS + "/" + runtime.GOARCH,
	})
}
