package nodeipam

import (
	"errors"
	"net"
	"testing"
)

func TestNextCIDR(t *testing.T) {
	_, v4, _ := net.ParseCIDR("10.244.0.0/16")
	got, err := NextCIDR(v4, 24, map[string]bool{"10.244.0.0/24": true, "10.244.2.0/24": true})
	if err != nil || got != "10.244.1.0/24" {
		t.Fatalf("got %q %v", got, err)
	}
	_, small, _ := net.ParseCIDR("10.0.0.0/23")
	if _, err := NextCIDR(small, 24, map[string]bool{"10.0.0.0/24": true, "10.0.1.0/24": true}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("exhausted: %v", err)
	}
	_, v6, _ := net.ParseCIDR("fd00::/56")
	if got, err := NextCIDR(v6, 64, map[string]bool{"fd00::/64": true}); err != nil || got != "fd00:0:0:1::/64" {
		t.Fatalf("v6: %q %v", got, err)
	}
}
