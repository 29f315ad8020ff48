# Skiff: one binary, built with cgo (libcontainer needs it).
GO        ?= go
BIN       := bin/skiff
export CGO_ENABLED := 1
# libcontainer applies seccomp profiles only when built with the seccomp tag (through
# libseccomp, from libseccomp-dev); without it a pod asking for RuntimeDefault or
# Localhost cannot start. GOFLAGS carries the tag to every go command below, and to
# the go builds the tests run (cluster's skiff binary).
export GOFLAGS := $(strip $(GOFLAGS) -tags=seccomp)
# Test timeout for the whole suite; CI has 90 minutes on 2 cores, the suite aims for under 20.
TEST_TIMEOUT ?= 30m

.PHONY: build testimage test run bench bench-store bench-chaos bench-scheduler bench-pods bench-api bench-services bench-scale lint deps cdeps sysdeps clean

build: cdeps
	$(GO) build -o $(BIN) ./cmd/skiff

# The agnhost-like test image's static binary; skiff up stores it on every agent as
# skiff.local/testimage:latest, since no registry is reachable here.
testimage:
	CGO_ENABLED=0 $(GO) build -o bin/testimage ./testimage

# The whole test suite. Root-only tests skip when not root, and fail under CI=true.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

# Starts a local cluster: three servers and one agent, as processes on this machine.
run: sysdeps build testimage
	./$(BIN) up --dir $(or $(DIR),$(HOME)/.skiff/dev) --test-image-binary bin/testimage

bench: bench-store

# raftstore against a three-member etcd, side by side in one run.
bench-store: build
	./$(BIN) bench store --out bench-store.json

# Five minutes of the register, churn and pod-rate workloads (on hollow agents and, as root,
# one real agent) under every fault kind
# (partitions and netem need root for network namespaces, slow-disk a blkio cgroup), then
# 2.5 minutes of the register workload against a 3-member etcd with leader kills; prints the
# table, writes chaos-out/, fails when a check fails. See bench/README.md.
bench-chaos: build testimage
	./$(BIN) bench chaos --duration 5m --faults all --peer etcd --test-image-binary bin/testimage --out $(or $(OUT),chaos-out)

# Three servers, 1,000 hollow nodes in one process, 10,000 pods created at once through
# Deployments: pods bound per second and create-to-bound percentiles.
bench-scheduler: build
	./$(BIN) bench scheduler --out bench-scheduler.json

# Scale mode: three servers, 1,000 hollow nodes heartbeating every 10 s, 30,000 pods through
# Deployments to Running: API p99 by verb from the servers' histograms, pods bound/s, time to
# convergence, RSS per server; writes bench-scale/. NODES= and PODS= (up to 5,000 and
# 150,000). See bench/README.md.
bench-scale: build
	./$(BIN) bench scale --nodes $(or $(NODES),1000) --pods $(or $(PODS),30000) --out $(or $(OUT),bench-scale)

# skiff's API, scheduler and memory side by side with upstream Kubernetes v1.32 from
# ../shared/k8s-reference (built first into $TMPDIR/k8s-reference/bin if missing: ~13 min):
# 100 nodes, 3,000 pods, the ConfigMap, list and watch workloads; writes bench-api/. See
# bench/README.md. SCALE=full steps through 100, 1,000 and 5,000 nodes.
bench-api: build
	./$(BIN) bench api --peer k8s-reference --scale $(or $(SCALE),small) --out $(or $(OUT),bench-api)

# One real agent (root): 100 pods created at once, created-to-Running percentiles, pods/s,
# and the agent's RSS and CPU with them all running.
bench-pods: build testimage
	./$(BIN) bench pods --test-image-binary bin/testimage --out bench-pods.json

# One real agent in a network namespace (root, nft): 1,000 Services of 10 hollow endpoints,
# EndpointSlice change to kernel p50/p99 (beside 10 Services), the full resync after a kill
# -9, and connections per second to a Service's address against the pod's IP.
bench-services: build testimage
	./$(BIN) bench services --test-image-binary bin/testimage --out bench-services.json

lint: cdeps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Things the build and tests need on a fresh machine.
deps: cdeps sysdeps
	$(GO) mod download

# The agent's service proxy and host ports, and the root tests, run nft; a fresh machine
# may not have it (root only: without root those tests skip, and apt-get could not install).
sysdeps:
	@command -v nft >/dev/null || [ "$$(id -u)" -ne 0 ] || (apt-get update -qq && apt-get install -y -qq nftables)

# The C side of the build: gcc for cgo, libseccomp's headers and pkg-config for the
# seccomp tag (Debian's packages).
cdeps:
	@command -v gcc >/dev/null || (apt-get update -qq && apt-get install -y -qq gcc)
	@pkg-config --exists libseccomp 2>/dev/null || (apt-get update -qq && apt-get install -y -qq pkg-config libseccomp-dev)

clean:
	rm -rf bin
