# Tests need PostgreSQL: withpg starts a throwaway server from this machine's
# binaries for the command it runs, unless DATABASE_URL names one already.
WITHPG = go run ./tools/withpg --

.PHONY: test vet fmt build run bench tidy-check

test: vet
	$(WITHPG) go test -race -count=1 ./...

vet:
	go vet ./...

fmt:
	@test -z "$$(gofmt -l .)" || { echo "files need gofmt:"; gofmt -l .; exit 1; }

build:
	go build -o bin/portal ./cmd/portal

run:
	go run ./cmd/portal dev

bench:
	$(WITHPG) go test -run '^$$' -bench . -benchmem ./...

tidy-check:
	go mod tidy -diff

# The audit review on a million events: page queries, streamed exports and
# `portal audit verify`, against their targets. Takes a few minutes.
.PHONY: bench-audit
bench-audit:
	$(WITHPG) go run ./tools/auditbench
