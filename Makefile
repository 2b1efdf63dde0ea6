# Developer and CI entry points. `make test` is the one command CI runs (see .ci/run): it builds
# the venv, installs the tools the tests run (kcat), lints, checks the generated schemas, starts
# real Kafka and Postgres locally (no Docker needed; see deploy/local/stack.py) and runs unit
# and integration tests in one pytest session.
# The stack is left running so the next `make test` starts in well under a second; `make down`
# stops it.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

VENV := .venv
PY := $(VENV)/bin/python
# Written after a successful install: the venv is rebuilt only when pyproject.toml is newer.
STAMP := $(VENV)/.installed
STACK := $(PY) deploy/local/stack.py
# `down` must work even when the venv is gone (e.g. CI failed while creating it).
STACK_ANY_PY = $(if $(wildcard $(PY)),$(PY),python3) deploy/local/stack.py
PYTEST_ARGS ?=
# Flags of `python -m bench` (e.g. BENCH_ARGS="--full" or "--scenarios latency --rates 100,1000").
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.installed-bench
# The seed's Socket.io + Postgres stack, the bench's duel peer (bench/peer, pinned by its lockfile).
PEER := bench/peer
PEER_STAMP := $(PEER)/node_modules/.installed

# Node packages: the interop suite mints session cookies with the real next-auth and @auth/core
# (pinned by package-lock.json; `npm ci` reinstalls exactly that when the lockfile changes).
INTEROP := tests/interop/nextauth
INTEROP_STAMP := $(INTEROP)/node_modules/.installed
# The browser SDK (TypeScript from npm, pinned by its package-lock.json) and its demo.
SDK := clients/js
SDK_STAMP := $(SDK)/node_modules/.installed
SDK_BUILT := $(SDK)/dist/.built
SDK_SOURCES := $(wildcard $(SDK)/src/*.ts $(SDK)/demo/*) $(wildcard $(SDK)/tsconfig*.json)
# Browser tests drive Debian's Chromium (Playwright's own browser downloads cannot work here).
CHROMIUM := /usr/bin/chromium

.PHONY: venv tools up down status lint schemas schemas-check test unit fuzz chaos bench node-deps sdk sdk-test chromium


venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

node-deps: $(INTEROP_STAMP)

$(INTEROP_STAMP): $(INTEROP)/package-lock.json
	cd $(INTEROP) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(SDK_STAMP): $(SDK)/package-lock.json
	cd $(SDK) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(SDK_BUILT): $(SDK_STAMP) $(SDK_SOURCES)
	cd $(SDK) && npm run --silent build
	touch $@

sdk: $(SDK_BUILT)

# The SDK's pure parts (backoff, cursors, outbox, reducers) with Node's own test runner.
sdk-test: $(SDK_STAMP)
	cd $(SDK) && npm test --silent

# Installs Debian's chromium when missing (CI runs as root; elsewhere sudo may be needed).
chromium:
	test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

up: venv sdk
	$(STACK) up

down:
	$(STACK_ANY_PY) down

status:
	$(STACK_ANY_PY) status

# Debian packages the tests run, installed once, as root (CI is root): kcat, a non-Python Kafka
# client (the integration tests publish other teams' events with it, as the job board's and the
# applications tracker's services would), and prometheus, which brings `prometheus` and
# `promtool` (alert unit tests, a real Prometheus scraping the test stack).
tools:
	@command -v kcat >/dev/null && command -v promtool >/dev/null \
	  && command -v prometheus >/dev/null || { \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "kcat or promtool missing: apt-get install kcat prometheus (as root)" >&2; exit 1; fi; \
	  apt-get -qq -o DPkg::Lock::Timeout=600 update && \
	  DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o DPkg::Lock::Timeout=600 \
	    install --no-install-recommends kcat prometheus >/dev/null; }

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict services schemas bench deploy/local/stack.py
	$(VENV)/bin/mypy tests

schemas: venv
	$(PY) -m schemas.generate

schemas-check: venv
	$(PY) -m schemas.generate --check

# PYTHONASYNCIODEBUG=1 makes asyncio report never-awaited coroutines and slow callbacks; with
# pytest's filterwarnings=error those fail the run instead of scrolling by.
test: venv tools lint schemas-check node-deps sdk sdk-test chromium
	$(STACK) up --infra-only
	eval "$$($(STACK) env)" && PYTHONASYNCIODEBUG=1 $(VENV)/bin/pytest tests $(PYTEST_ARGS)

unit: venv tools
	PYTHONASYNCIODEBUG=1 $(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

# The frame fuzzer of `make test` (tests/integration/test_fuzz_frames.py), run far longer:
# FUZZ_EXAMPLES batches of 5..25 generated frames against a live gateway.
FUZZ_EXAMPLES ?= 5000
fuzz: venv
	$(STACK) up --infra-only
	eval "$$($(STACK) env)" && FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	  $(VENV)/bin/pytest tests/integration/test_fuzz_frames.py $(PYTEST_ARGS)

# The chaos soak of `make test` (tests/integration/test_chaos.py), run for CHAOS_DURATION_S
# (default ten minutes) with every kind of fault in turn; the counts go to CHAOS_REPORT.
CHAOS_DURATION_S ?= 600
CHAOS_REPORT ?= $(CURDIR)/.local/chaos-report.json
chaos: venv
	$(STACK) up --infra-only
	eval "$$($(STACK) env)" && CHAOS_DURATION_S=$(CHAOS_DURATION_S) CHAOS_REPORT=$(CHAOS_REPORT) \
	  $(VENV)/bin/pytest -s tests/integration/test_chaos.py $(PYTEST_ARGS)

# Benchmarks (docs/performance.md), not part of `make test`: installs the bench extras, starts
# Kafka and Postgres if needed; the bench runs chat and gateway processes of its own and writes
# bench/results/latest.json and PNG plots. The default run takes a few minutes.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $(BENCH_STAMP)

$(PEER_STAMP): $(PEER)/package-lock.json
	cd $(PEER) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

bench: venv $(BENCH_STAMP) $(PEER_STAMP)
	$(STACK) up --infra-only
	eval "$$($(STACK) env)" && $(PY) -m bench $(BENCH_ARGS)
