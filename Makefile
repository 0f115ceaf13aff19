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
	@test -s .demo-token || ./bin/ponte admin token --db $(DB) --user demo > .demo-token
	@echo
	@echo "Ponte is starting: open http://$(ADDR)/ for its status page (Ctrl-C stops it)."
	@echo "In another terminal, sync a tablet replica with it:"
	@echo "  bin/ponte client --replica tablet-a.db put persons p1 '{\"given_name\":\"أمينة\",\"family_name\":\"Haddad\"}'"
	@echo "  bin/ponte client --replica tablet-a.db --server ws://$(ADDR)/sync --token \$$(cat .demo-token) sync"
	@echo "  bin/ponte client --replica tablet-a.db status"
	@echo "A second tablet needs a token of its own: bin/ponte admin token --db $(DB) --user demo"
	@echo
	./bin/ponte serve --addr $(ADDR) --db $(DB)

# Every test, with the race detector; fuzz targets run on their seed corpus.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# Each fuzz target for FUZZTIME.
fuzz:
	@for target in $$($(GO) test -list '^Fuzz' ./syncproto | grep '^Fuzz'); do \
		echo "fuzz $$target"; \
		$(GO) test ./syncproto -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

# The end-to-end benchmark: a real server process and real clients on loopback.
bench: build
	./bin/ponte bench --json

clean:
	rm -rf bin .demo-token
