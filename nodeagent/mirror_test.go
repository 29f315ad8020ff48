package nodeagent

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMirrorTransportSendsMirroredRegistriesToTheMirror(t *testing.T) {
	var got string
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.URL.Path }))
	defer mirror.Close()
	tr := &mirrorTransport{mirrors: map[string]string{"skiff.local": mirror.Listener.Addr().String()}, next: http.DefaultTransport}
	resp, err := (&http.Client{Transport: tr}).Get("https://skiff.local/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != "/v2/" {
		t.Fatalf("mirror saw %q", got)
	}
	// Other registries are left alone.
	if _, err := (&http.Client{Transport: tr}).Get("http://127.0.0.1:1/v2/"); err == nil {
		t.Fatal("an unmirrored registry was redirected")
	}
}
