package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// saDir is where a pod's service account token and CA are mounted.
var saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func runGet(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	count := fs.Int("count", 1, "number of requests")
	sa := fs.Bool("sa", false, "send the service account token and trust its ca.crt")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *count < 1 {
		fmt.Fprintln(stderr, "usage: testimage get [--count N] [--sa] URL")
		return 2
	}
	url := fs.Arg(0)
	// A fresh connection per request, so that each one may reach a
	// different backend of a Service.
	tr := &http.Transport{DisableKeepAlives: true}
	var token string
	if *sa {
		b, err := os.ReadFile(filepath.Join(saDir, "token"))
		if err != nil {
			fmt.Fprintf(stderr, "testimage get: %v\n", err)
			return 1
		}
		token = strings.TrimSpace(string(b))
		ca, err := os.ReadFile(filepath.Join(saDir, "ca.crt"))
		if err != nil {
			fmt.Fprintf(stderr, "testimage get: %v\n", err)
			return 1
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			fmt.Fprintln(stderr, "testimage get: no certificate in ca.crt")
			return 1
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	failed := false
	for range *count {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			fmt.Fprintf(stderr, "testimage get: %v\n", err)
			return 2
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintf(stderr, "testimage get: %v\n", err)
			failed = true
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			fmt.Fprintf(stderr, "testimage get: reading body: %v\n", err)
			failed = true
			continue
		}
		fmt.Fprintln(stdout, strings.TrimRight(string(body), "\n"))
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			fmt.Fprintf(stderr, "testimage get: %s\n", resp.Status)
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

func runResolve(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: testimage resolve NAME")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, args[0])
	if err != nil {
		fmt.Fprintf(stderr, "testimage resolve: %v\n", err)
		return 1
	}
	if len(addrs) == 0 {
		fmt.Fprintf(stderr, "testimage resolve: no addresses for %s\n", args[0])
		return 1
	}
	for _, a := range addrs {
		fmt.Fprintln(stdout, a)
	}
	return 0
}
