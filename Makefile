# leadstream: `make run` shows it working, `make test` proves it.
CARGO ?= cargo

.PHONY: run test test-rust test-web test-e2e bench lint fmt clean

## The stores the integration tests run on. PostgreSQL needs its server binaries (Debian:
## `apt-get install postgresql`): scripts/throwaway-postgres starts a throwaway server on a
## unix socket for the run and removes it afterwards. Without them: `make test STORES=sqlite`.
STORES ?= sqlite postgres

## Start the server (demo mode when no META_* settings are present).
run:
	$(CARGO) run --release --bin leadstream

## Everything: formatting, lints, unit + integration tests, browser end-to-end tests.
test: lint test-rust test-web test-e2e

# The product crate on any platform; the load generator (tools/loadgen) only where it runs.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings
ifeq ($(shell uname -s),Linux)
	$(CARGO) clippy -p loadgen --all-targets -- -D warnings
endif

test-rust:
	$(CARGO) test --all-targets
ifneq (,$(filter postgres,$(STORES)))
	scripts/throwaway-postgres run -- $(CARGO) test --test it
endif

## The dashboard's live-data source against a fake EventSource, fetch and clock: Node's own
## test runner, no browser, no npm packages.
test-web:
	node --test tests/web/

## Browser tests in Debian's Chromium through playwright-core (see tests/e2e/README.md).
test-e2e:
	$(CARGO) build --bin leadstream
	cd tests/e2e && npm ci --no-audit --no-fund && node --test --test-concurrency=1

## The load generator behind the README's numbers (tools/loadgen, Linux only).
bench:
	$(CARGO) run --release -p loadgen

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
