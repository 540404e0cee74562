# redishttp — everything a developer or CI runs. Self-contained: no build submodule.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO          ?= go
TEST_TIMEOUT ?= 60m
FUZZTIME    ?= 15s
# Tools (crossplane CLI and core, etcd, kube-*, kwok) are built once from the Go
# module proxy into a cache outside the clone; see hack/tools.sh.
TOOLS_BIN    = $(shell hack/tools.sh path)

.PHONY: all deps tools tidy generate lint test unit fuzz bench reviewable check-diff build render dev dev-down e2e

all: test

deps: ## Install system packages the tests use (redis-server).
	hack/deps.sh

tools: ## Build the pinned tools into the cache (slow the first time).
	hack/tools.sh path

tidy: ## go mod tidy: go.mod and go.sum list exactly what the code needs.
	$(GO) mod tidy

generate: ## Regenerate every generated file (CRDs, XRDs, deepcopy, managed methods).
	$(GO) generate ./...

test: deps ## Run all tests against real components: unit, fuzz, render, redis, control plane, e2e.
	export REDISHTTP_TOOLS_BIN="$(TOOLS_BIN)" REDISHTTP_REQUIRE_TOOLS=1; \
	$(GO) test -tags e2e -count=1 -timeout $(TEST_TIMEOUT) ./... ; \
	$(MAKE) --no-print-directory fuzz

lint: ## golangci-lint (pinned, built into the tools cache) over every file, e2e ones too, and the import-order config names our real module.
	@mod="$$($(GO) list -m)"; grep -q "prefix($$mod)" .golangci.yml || { echo ".golangci.yml's gci sections must name prefix($$mod)" >&2; exit 1; }
	"$$(hack/tools.sh golangci-lint)/golangci-lint" run --allow-parallel-runners --build-tags e2e ./...

unit: ## Unit tests only (no tools, no servers).
	$(GO) test -short ./...

# go test -fuzz takes one package and one target per run, so the targets are
# found by grep: a new `func Fuzz...` in any _test.go runs without editing this.
fuzz: ## A short run of every fuzz target in the tree, each for FUZZTIME.
	@targets="$$(grep -rHo --include='*_test.go' --exclude-dir=testdata --exclude-dir=node_modules --exclude-dir=.git '^func Fuzz[A-Za-z0-9_]*' . | sed 's|^\(.*\)/[^/]*:func |\1:|' | sort)"; \
	test -n "$$targets" || { echo "no fuzz targets found" >&2; exit 1; }; \
	for t in $$targets; do \
		echo "fuzz: $${t#*:} in $${t%%:*}"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

bench: deps ## Benchmarks; figures land in the README by hand.
	export REDISHTTP_TOOLS_BIN="$(TOOLS_BIN)"; \
	$(GO) test -run '^$$' -bench . -benchmem ./...

reviewable: generate lint test

# CI runs `make test` right after check-diff, so check-diff stops at generate,
# tidy and lint rather than run the tests twice.
check-diff: generate tidy lint ## Fail when generated files or go.mod/go.sum are not current, or lint fails.
	git diff --exit-code -- . || { echo "generated files or go.mod/go.sum are stale: run make generate tidy and commit" >&2; exit 1; }
	test -z "$$(git status --porcelain --untracked-files=all)" || { git status --porcelain; echo "make generate created untracked files" >&2; exit 1; }

render: ## Render both examples with the real crossplane CLI against a local function.
	hack/render.sh

# ---- Packages, local control plane, end-to-end tests (cluster/, test/e2e) ----
# Where packages and their dependencies live (registry/organisation) and their version.
REGISTRY ?= xpkg.crossplane.io/ai-decenter
VERSION  ?= v0.1.0
# Control-plane mode of `make dev`: claim (v1 LegacyCluster XRD + claims) or namespaced (v2).
MODE     ?= claim
E2E_TIMEOUT ?= 30m

.PHONY: publish bench-e2e bench-failover

build: ## Build the runtime images (no Docker) and the four .xpkg files into _output/.
	$(GO) run ./cluster/images build --registry=$(REGISTRY) --version=$(VERSION) --out=_output \
		--crossplane="$$(hack/tools.sh crossplane)/crossplane"

publish: ## Build, then push every package to $(REGISTRY)/<name>:$(VERSION).
	$(GO) run ./cluster/images publish --registry=$(REGISTRY) --version=$(VERSION) --out=_output \
		--crossplane="$$(hack/tools.sh crossplane)/crossplane"

# ---- ApiKey provider (internal/controller/apikey) ----
APIKEYS ?= 1000
APIKEYS_RATE ?= 100
.PHONY: bench-apikeys
bench-apikeys: deps ## N ApiKeys (APIKEYS, default 1000) to Ready, then a provider restart, against a real kube-apiserver and redis-server: created/Ready and re-verify times, API and Redis writes per key, next to raw ACL SETUSER/s.
	export REDISHTTP_TOOLS_BIN="$$(hack/tools.sh etcd):$$(hack/tools.sh kube)" REDISHTTP_REQUIRE_TOOLS=1 \
		REDISHTTP_BENCH_APIKEYS=$(APIKEYS) REDISHTTP_BENCH_RATE=$(APIKEYS_RATE); \
	$(GO) test -run '^$$' -bench '^BenchmarkApiKeysReady$$' -benchtime=1x -timeout 20m ./internal/controller/apikey

DEV_DIR = _output/dev

dev: ## Start the local control plane (MODE=claim|namespaced) in the background; prints how to use it.
	$(GO) build -o _output/bin/dev ./cluster/local/dev
	REDISHTTP_TOOLS_BIN="$(TOOLS_BIN)" _output/bin/dev up --dir=$(DEV_DIR) --mode=$(MODE)

dev-down: ## Stop every process `make dev` started (by pid, newest first); says where tenant data stays (PURGE=1 deletes it).
	@if [[ -x _output/bin/dev ]]; then _output/bin/dev down --dir=$(DEV_DIR) $(if $(PURGE),--purge); \
	else $(GO) run ./cluster/local/dev down --dir=$(DEV_DIR) $(if $(PURGE),--purge); fi

e2e: ## End-to-end tests on a real local control plane, claim and namespaced mode.
	export REDISHTTP_TOOLS_BIN="$(TOOLS_BIN)" REDISHTTP_REQUIRE_TOOLS=1; \
	$(GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) -v ./test/e2e

BENCH_CLAIMS ?= 100
bench-e2e: ## Claims per minute on the local control plane (BENCH_CLAIMS=100), function CPU and memory.
	export REDISHTTP_TOOLS_BIN="$(TOOLS_BIN)" REDISHTTP_REQUIRE_TOOLS=1 E2E_BENCH_CLAIMS=$(BENCH_CLAIMS); \
	$(GO) test -tags e2e -count=1 -timeout 90m -v -run '^TestBenchClaims$$' ./test/e2e

FAILOVER_RUNS ?= 5
bench-failover: ## Failover time (writes through the Secret's url again) p50/max over FAILOVER_RUNS (5) kill -9 and force-deletes of the master on the local platform, acknowledged writes lost, beside bare Sentinel measured in the same run and the anchors' documented defaults.
	export REDISHTTP_TOOLS_BIN="$(TOOLS_BIN)" REDISHTTP_REQUIRE_TOOLS=1 E2E_BENCH_FAILOVER=$(FAILOVER_RUNS); \
	$(GO) test -tags e2e -count=1 -timeout 60m -v -run '^TestBenchFailover$$' ./test/e2e | grep --line-buffered -v '^=== RUN'

# ---- HTTP gateway (cmd/gateway, internal/gateway, test/compat) ----
.PHONY: compat bench-gateway bench-backup

compat: ## The official @upstash/redis test suite and @upstash/ratelimit against cmd/gateway and a real redis-server 7.0 (bun from npm).
	hack/deps.sh compat
	test/compat/run.sh

bench-backup: ## Backup and restore MiB/s of a 1 GiB dataset, beside redis-cli --rdb and a plain S3 upload (versitygw, redis-server).
	export REDISHTTP_TOOLS_BIN="$(TOOLS_BIN)" REDISHTTP_BENCH_BACKUP_MB=$${REDISHTTP_BENCH_BACKUP_MB:-1024}; \
	$(GO) test -count=1 -timeout 30m -run '^TestBenchBackup$$' -v ./internal/backup | grep -v '^=== RUN'

bench-gateway: ## GET /get/k and /pipeline of 100 commands: req/s and p50/p99 next to webdis and redis-benchmark, same redis-server and concurrency.
	hack/deps.sh bench
	hack/bench-gateway.sh
