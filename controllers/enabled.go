package controllers

import (
	"fmt"
	"slices"
	"strings"

	"github.com/skiff-dev/skiff/controllers/framework"
)

// resolveEnabled applies a --controllers list as kube-controller-manager reads it: "*"
// turns on every plugin not disabled by default, "name" turns one on, "-name" turns one
// off, and an explicit entry beats "*". An empty list means "*". Unknown names are errors.
func resolveEnabled(plugins []framework.Plugin, list []string) ([]framework.Plugin, error) {
	if len(list) == 0 {
		list = []string{"*"}
	}
	known := map[string]bool{}
	for _, p := range plugins {
		known[p.Name] = true
	}
	star := false
	on, off := map[string]bool{}, map[string]bool{}
	for _, raw := range list {
		item := strings.TrimSpace(raw)
		switch {
		case item == "*":
			star = true
		case strings.HasPrefix(item, "-"):
			name := item[1:]
			if !known[name] {
				return nil, fmt.Errorf("unknown controller %q (known: %s)", name, strings.Join(names(plugins), ", "))
			}
			off[name] = true
		case item == "":
		default:
			if !known[item] {
				return nil, fmt.Errorf("unknown controller %q (known: %s)", item, strings.Join(names(plugins), ", "))
			}
			on[item] = true
		}
	}
	var out []framework.Plugin
	for _, p := range plugins {
		if off[p.Name] {
			continue
		}
		if on[p.Name] || (star && !p.DisabledByDefault) {
			out = append(out, p)
		}
	}
	return out, nil
}

func names(plugins []framework.Plugin) []string {
	var n []string
	for _, p := range plugins {
		n = append(n, p.Name)
	}
	slices.Sort(n)
	return n
}
