# Ponte: the two commands a fresh clone needs are `make run` and `make test`.
GO       ?= go
ADDR     ?= 127.0.0.1:8080
DB       ?= ponte.db
FUZZX    ?= 1

.PHONY: build run deps test fuzz bench clean

build:
	@./scripts/install-deps
	$(GO) build -o bin/ponte ./cmd/ponte

# The server on its embedded SQLite store, with a demo programme to look at
# (created on first run; it prints the address and a sign-in).
run: build
	@echo
	@echo "Ponte is starting (Ctrl-C stops it). To sync a tablet replica, in another terminal:"
	@echo "  bin/ponte admin enrol --db $(DB) --user giulia      # prints a one-time code"
	@echo "  bin/ponte client --replica tablet.db --server ws://$(ADDR)/sync enrol CODE"
	@echo "  bin/ponte client --replica tablet.db --server ws://$(ADDR)/sync sync"
	@echo "  bin/ponte client --replica tablet.db list persons"
	@echo
	./bin/ponte serve --demo --addr $(ADDR) --db $(DB)

# What the tests need on a bare Debian machine: a C compiler, Chromium.
deps:
	@./scripts/install-deps --browser

# Every test, with the race detector; fuzz targets run on their seed corpus;
# the browser tests in headless Chromium.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# Each fuzz target for a number of executions, about 10 s each on a 2-core
# machine (FUZZX=10 runs ten times as many). A count, not a duration: when
# -fuzztime runs out, Go 1.26's fuzz coordinator can fail the run with
# "context deadline exceeded" though no input failed (golang/go#75804, fixed
# in Go 1.27). Minimising a new input is capped at 2s instead of a minute.
fuzz:
	@for spec in ./syncproto:400000 ./records:200000 ./server:15000; do \
		pkg=$${spec%:*}; execs=$$(( $${spec#*:} * $(FUZZX) )); \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$target ($$execs executions)"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$target\$$" -fuzztime $${execs}x -fuzzminimizetime 2s || exit 1; \
		done; \
	done

# The end-to-end benchmark: a real server process and real clients on loopback.
bench: build
	./bin/ponte bench --json

clean:
	rm -rf bin
