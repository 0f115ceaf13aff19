# Ponte: the two commands a fresh clone needs are `make run` and `make test`.
GO       ?= go
ADDR     ?= 127.0.0.1:8080
DB       ?= ponte.db
FUZZTIME ?= 15s

.PHONY: build run test fuzz bench clean

build:
	$(GO) build -o bin/ponte ./cmd/ponte

# The server on its embedded SQLite store, with a device token to try it.
run: build
	@test -s .demo-token || { ./bin/ponte admin user add --db $(DB) --role coordinator demo 2>/dev/null; \
		./bin/ponte admin token --db $(DB) --user demo > .demo-token; }
	@echo
	@echo "Ponte is starting: open http://$(ADDR)/ for its status page (Ctrl-C stops it)."
	@echo "In another terminal, sync a tablet replica with it:"
	@echo "  bin/ponte client --replica tablet-a.db put persons 018f3a2b-7c4d-7e5f-8a9b-0c1d2e3f4a5b '{\"site_id\":\"3f2b8c1e-5d4a-4e1b-9c2d-7a6b5c4d3e2f\",\"given_name\":\"أمينة\",\"family_name\":\"حداد\"}'"
	@echo "  bin/ponte client --replica tablet-a.db --server ws://$(ADDR)/sync --token \$$(cat .demo-token) sync"
	@echo "  bin/ponte client --replica tablet-a.db status"
	@echo "A second tablet enrols with a one-time code: bin/ponte admin enrol --db $(DB) --user demo"
	@echo "  then: bin/ponte client --replica tablet-b.db --server ws://$(ADDR)/sync enrol CODE"
	@echo
	./bin/ponte serve --addr $(ADDR) --db $(DB)

# Every test, with the race detector; fuzz targets run on their seed corpus.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# Each fuzz target for FUZZTIME. Minimising a new input is capped at 2s: by
# default it may take a minute, and a fuzz run then overruns FUZZTIME and
# fails with "context deadline exceeded" though nothing is wrong.
fuzz:
	@for pkg in ./syncproto ./records ./server; do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$target"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s || exit 1; \
		done; \
	done

# The end-to-end benchmark: a real server process and real clients on loopback.
bench: build
	./bin/ponte bench --json

clean:
	rm -rf bin .demo-token
