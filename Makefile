# Tests need PostgreSQL: withpg starts a throwaway server from this machine's
# binaries for the command it runs, unless DATABASE_URL names one already.
WITHPG = go run ./tools/withpg --

# The age command-line tools the tests run: the version go.mod requires,
# installed into the project (.tools/bin, git-ignored) and put first on PATH,
# so that a distribution's older age (Debian and Ubuntu ship 1.1.1, without
# post-quantum keys) is never the one tested.
TOOLS := $(CURDIR)/.tools/bin
AGE_VERSION = $(shell go list -m -f '{{.Version}}' filippo.io/age)
# helm, for `helm lint` and `helm template` over the chart in deploy/helm.
HELM_VERSION = v3.22.0

.PHONY: test vet fmt build run bench tidy-check tools axe agebundle

# axe-core, the accessibility checker the browser test injects into every
# page, pinned, installed from npm into .tools/axe (git-ignored).
AXE_VERSION = 4.14.1
AXE = $(CURDIR)/.tools/axe/node_modules/axe-core/axe.min.js

test: vet tools axe
	PATH="$(TOOLS):$$PATH" $(WITHPG) go test -race -count=1 ./...
	$(MAKE) test-deploy
	$(MAKE) fuzz

# The Helm chart and the agent's values for the support chart: helm lint,
# helm template, and every rendered manifest decoded strictly against the
# Kubernetes API types, and docker-compose.yml. A module of its own (deploy/test), so that
# k8s.io/api stays out of the portal's go.mod.
.PHONY: test-deploy
test-deploy: tools
	cd deploy/test && go vet ./... && PATH="$(TOOLS):$$PATH" go test -count=1 ./...

axe:
	@if [ "$$(node -p 'require("$(CURDIR)/.tools/axe/node_modules/axe-core/package.json").version' 2>/dev/null)" != "$(AXE_VERSION)" ]; then \
		echo "installing axe-core $(AXE_VERSION) into .tools/axe"; \
		npm install --no-save --no-audit --no-fund --prefix "$(CURDIR)/.tools/axe" "axe-core@$(AXE_VERSION)"; \
	fi

# web/static/age.js, the age the pages run in the browser: npm's
# age-encryption, at the version package-lock.json pins, bundled by esbuild
# into one ES module (no CDN). It rewrites web/agebundle/BUNDLE, the version
# and SHA-256 that TestAgeBundleMatchesItsRecord checks the committed file
# against. Commit both.
agebundle:
	cd web/agebundle && npm ci --no-audit --no-fund && \
	./node_modules/.bin/esbuild entry.mjs --bundle --format=esm --minify --legal-comments=eof --outfile=../static/age.js
	cd web/agebundle && { \
	  echo "age-encryption $$(node -p 'require("./node_modules/age-encryption/package.json").version')"; \
	  echo "esbuild $$(node -p 'require("./node_modules/esbuild/package.json").version')"; \
	  echo "sha256 $$(sha256sum ../static/age.js | cut -d" " -f1)"; } > BUNDLE
	@cat web/agebundle/BUNDLE

# Each fuzz target of the repository, one after the other, on one throwaway
# PostgreSQL (two targets need it), for its own count of executions (about
# 3 s each here; a count, as a duration can fail on Go's go.dev/issue/75804).
# The list is in tools/fuzz/main.go; a test there fails if a Fuzz function
# is missing from it. Longer: make fuzz FUZZTIME=1000000x (or 10m), or one
# target: go run ./tools/withpg -- go run ./tools/fuzz -fuzztime 10m FuzzBinding
FUZZTIME ?=
.PHONY: fuzz
fuzz:
	$(WITHPG) go run ./tools/fuzz $(if $(FUZZTIME),-fuzztime $(FUZZTIME))

# Installs age and age-keygen into .tools/bin unless they are there at the
# version go.mod requires, and helm at HELM_VERSION.
tools:
	@v="$(AGE_VERSION)"; test -n "$$v" || { echo "cannot read the version of filippo.io/age from go.mod"; exit 1; }; \
	if [ "$$($(TOOLS)/age --version 2>/dev/null)" != "$$v" ] || [ "$$($(TOOLS)/age-keygen --version 2>/dev/null)" != "$$v" ]; then \
		echo "installing age $$v into $(TOOLS)"; \
		GOBIN="$(TOOLS)" go install "filippo.io/age/cmd/...@$$v"; \
	fi
	@# helm built by go install reports no full version; its module version says which it is.
	@if [ "$$(go version -m $(TOOLS)/helm 2>/dev/null | awk '$$1=="mod"{print $$3}')" != "$(HELM_VERSION)" ]; then \
		echo "installing helm $(HELM_VERSION) into $(TOOLS) (about two minutes the first time)"; \
		GOBIN="$(TOOLS)" go install "helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)"; \
	fi

vet:
	go vet ./...

fmt:
	@test -z "$$(gofmt -l .)" || { echo "files need gofmt:"; gofmt -l .; exit 1; }

build:
	go build -o bin/portal ./cmd/portal

run:
	go run ./cmd/portal dev

# Every Go benchmark, printed as it runs and then as one table with each
# goal beside its figure (tools/benchtable); a missed goal or a failed
# benchmark fails the target. One package at a time (-p 1): go test runs
# packages side by side otherwise, and each package's benchmarks would be
# timed on cores another package's are using.
bench:
	bash -o pipefail -c "$(WITHPG) go test -p 1 -run '^$$' -bench . -benchmem ./... | go run ./tools/benchtable"

tidy-check:
	go mod tidy -diff

# The audit review on a million events: page queries, streamed exports and
# `portal audit verify`, against their targets. Takes a few minutes.
.PHONY: bench-audit
bench-audit:
	$(WITHPG) go run ./tools/auditbench

# The load test of `portal serve`: seeds 10,000 credentials and 1,000,000
# audit events, lets 50 customers and 5 staff browse for a minute, then
# saturates the portal, and prints per-route latency, errors and peak memory
# against their targets (exit non-zero on a miss). `go run ./tools/load
# -quick` under withpg is the short version for development.
.PHONY: load
load:
	$(WITHPG) go run ./tools/load
