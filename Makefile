# Threadline — the two commands a newcomer needs are `make dev` and `make test`.
#
# Every tool is pinned here or in package-lock.json / Cargo.lock, installed on first use and
# left alone afterwards when already present at the right version.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

NODE_BIN   := $(CURDIR)/node_modules/.bin
CARGO_BIN  := $(HOME)/.cargo/bin
# node_modules/.bin first: it holds Node 22 (wrangler needs >= 22.12), wrangler and wasm-opt.
export PATH := $(NODE_BIN):$(CARGO_BIN):$(PATH)
export WRANGLER_SEND_METRICS := false

WORKER_BUILD_VERSION := 0.8.7
# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' Cargo.lock)
# worker-build would otherwise try to download these from GitHub, which fails offline.
export WASM_BINDGEN_BIN := $(CARGO_BIN)/wasm-bindgen
export WASM_OPT_BIN := $(NODE_BIN)/wasm-opt

DEV_PORT ?= 8787
DEV_STATE := .wrangler/state
SOURCES := $(shell find src -type f) Cargo.toml Cargo.lock openapi.json
BUILD_STAMP := build/worker/shim.mjs

.PHONY: help dev test tools build migrate test-native test-wasm test-e2e lint lint-pure fmt deploy clean

help:
	@echo "make dev    - install what is missing, build, migrate local D1, serve on http://127.0.0.1:$(DEV_PORT)"
	@echo "make test   - native, wasm and end-to-end tests"
	@echo "make lint   - cargo fmt --check and clippy on host and wasm targets"
	@echo "make deploy - build and wrangler deploy (see README, Deploy)"
	@echo "make bench  - Threadline on workerd (Miniflare) against a JS floor and Portkey (~10 min); writes bench/RESULTS.md"
	@echo "make fuzz   - schemathesis against the real worker (FUZZ_MAX_EXAMPLES, FUZZ_SEED, FUZZ_MAX_TIME)"
	@echo "make fuzz-ci - the short fuzz pass CI runs (2-3 min)"

## ---- tools --------------------------------------------------------------------------------

tools: node_modules/.installed .tools/rust-target .tools/worker-build-$(WORKER_BUILD_VERSION) .tools/wasm-bindgen-$(WASM_BINDGEN_VERSION)

node_modules/.installed: package.json package-lock.json
	@# `npm install` rather than `npm ci`: npm 11 writes a lock without the other platforms'
	@# optional workerd builds and `npm ci` then refuses it as out of sync. Versions still
	@# come from package-lock.json.
	npm install --no-audit --no-fund
	@touch $@

.tools/rust-target:
	@mkdir -p .tools
	rustup target add wasm32-unknown-unknown
	@touch $@

.tools/worker-build-$(WORKER_BUILD_VERSION):
	@mkdir -p .tools
	@if [ "$$(worker-build --version 2>/dev/null | awk '{print $$NF}')" != "$(WORKER_BUILD_VERSION)" ]; then \
	  cargo install worker-build --version $(WORKER_BUILD_VERSION) --locked; fi
	@touch $@

# Not --locked: the lockfile shipped with wasm-bindgen-cli 0.2.130 names a webpki-roots
# release that crates.io no longer serves; the version of the CLI itself is still exact.
.tools/wasm-bindgen-$(WASM_BINDGEN_VERSION):
	@mkdir -p .tools
	@if [ "$$(wasm-bindgen --version 2>/dev/null | awk '{print $$2}')" != "$(WASM_BINDGEN_VERSION)" ]; then \
	  cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); fi
	@touch $@

## ---- build --------------------------------------------------------------------------------

build: tools $(BUILD_STAMP) build/public/docs/assets/swagger-ui-bundle.js build/public/docs/assets/redoc.standalone.js

$(BUILD_STAMP): $(SOURCES)
	worker-build --release
	@touch $@

build/public/docs/assets/swagger-ui-bundle.js: node_modules/.installed
	@mkdir -p build/public/docs/assets
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css build/public/docs/assets/

build/public/docs/assets/redoc.standalone.js: node_modules/.installed
	@mkdir -p build/public/docs/assets
	cp node_modules/redoc/bundles/redoc.standalone.js build/public/docs/assets/

## ---- run ----------------------------------------------------------------------------------

# A development .dev.vars with a random JWT_SECRET, written only when there is none.
.dev.vars:
	@printf 'ENVIRONMENT=development\nLOG_LEVEL=debug\nJWT_SECRET=%s\n' \
	  "$$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("hex"))')" > $@
	@echo "wrote .dev.vars with a random development JWT_SECRET"

dev-vars: .dev.vars
	@grep -q '^JWT_SECRET=' .dev.vars || printf 'JWT_SECRET=%s\n' \
	  "$$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("hex"))')" >> .dev.vars

migrate: tools
	CI=true wrangler d1 migrations apply threadline --local --persist-to $(DEV_STATE)

dev: build dev-vars migrate
	wrangler dev --ip 127.0.0.1 --port $(DEV_PORT) --persist-to $(DEV_STATE) --show-interactive-dev-session=false

## ---- test ---------------------------------------------------------------------------------

test: test-native test-wasm test-e2e

test-native:
	cargo test --lib

test-wasm: tools
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	  cargo test --target wasm32-unknown-unknown --lib

test-e2e: build
	node --test --test-concurrency=2 tests/support/*.test.mjs tests/e2e/*.test.mjs

# Folders that must stay pure translators: they may not name the `worker` crate (nor the API's
# error type, for the wire formats), so they build and test without the Workers runtime.
PURE_DIRS := src/providers/wire src/auth/crypto src/openai/request.rs src/openai/embeddings.rs \
  src/openai/responses/request.rs src/openai/responses/object.rs
WIRE_DIRS := src/providers/wire

lint: tools lint-pure
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings

lint-pure:
	@if grep -rnE '(^|[^A-Za-z0-9_])worker::|use worker\b' $(PURE_DIRS); then \
	  echo "lint-pure: the pure folders ($(PURE_DIRS)) must not name the worker crate" >&2; exit 1; fi
	@if grep -rnE 'ApiError|crate::http::' $(WIRE_DIRS); then \
	  echo "lint-pure: the wire translators ($(WIRE_DIRS)) must not use the API error type" >&2; exit 1; fi
	@echo "lint-pure: $(PURE_DIRS) name no worker:: and $(WIRE_DIRS) no ApiError"

fmt:
	cargo fmt --all

deploy: build
	wrangler d1 migrations apply threadline --remote
	wrangler deploy

## ---- benchmark (not part of `make test`; see README, Performance) ---------------------------

.PHONY: bench bench-tools check-size

# LiteLLM (an optional target: BENCH_TARGETS=…,litellm): the newest release whose dependencies
# all resolve from PyPI here (1.103.8 and later require a certifi that PyPI does not serve yet).
# Installed into bench/.venv (git-ignored) only when a run asks for it.
LITELLM_VERSION := 1.103.5
OHA_VERSION := 1.16.0
BENCH_VENV := bench/.venv
# npm and python3 as the system has them, without node_modules/.bin (Node 22) in front.
SYSTEM_PATH := $(subst $(NODE_BIN):,,$(PATH))
# The release bundle's budget, gzip (wasm + JS): the Free plan allows 3 MB, we allow 1 MiB.
BUNDLE_BUDGET_BYTES := 1048576

# The workers run on workerd through Miniflare (wrangler's own pinned dependency, so nothing
# more to install); knobs such as BENCH_TARGETS and BENCH_STORAGE_LATENCY: bench/run.mjs.
bench: build bench-tools
	node bench/run.mjs
	@# Realtime: latency per delta through the conversation's Durable Object, open sockets and memory.
	node bench/realtime.mjs
	@# Files: 10 MiB upload/download through the worker against local R2, memory, image chat CPU.
	node bench/files.mjs
	@# Pipelines: executions/s of a three-step pipeline on the local queue, overhead per step.
	node bench/pipelines.mjs

# wrk from Debian's packages, or oha from crates.io where apt-get is unavailable; Portkey at
# the version package.json pins; LiteLLM pinned into its own virtualenv when asked for.
BENCH_TARGETS ?=
bench-tools: $(if $(findstring litellm,$(BENCH_TARGETS)),$(BENCH_VENV)/.litellm-$(LITELLM_VERSION))
	@if ! command -v wrk >/dev/null && ! command -v oha >/dev/null; then \
	  if command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; then :; \
	  else cargo install oha --version $(OHA_VERSION) --locked; fi; fi
	@want=$$(node -p "require('./package.json').devDependencies['@portkey-ai/gateway']"); \
	have=$$(node -p "try { require('./node_modules/@portkey-ai/gateway/package.json').version } catch { '' }"); \
	if [ "$$want" != "$$have" ]; then env PATH="$(SYSTEM_PATH)" npm install --no-audit --no-fund; fi

$(BENCH_VENV)/.litellm-$(LITELLM_VERSION):
	env PATH="$(SYSTEM_PATH)" python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet 'litellm[proxy]==$(LITELLM_VERSION)'
	@touch $@

# Fails when the release bundle (wasm + JS glue, gzip -9) is over its budget.
check-size: build
	@wasm=$$(gzip -9 -c build/index_bg.wasm | wc -c); \
	js=$$(cat build/index.js build/worker/shim.mjs src/entry.mjs | gzip -9 | wc -c); \
	total=$$((wasm + js)); \
	echo "release bundle: $$total bytes gzip (wasm $$wasm + JS $$js); budget $(BUNDLE_BUDGET_BYTES)"; \
	if [ $$total -gt $(BUNDLE_BUDGET_BYTES) ]; then echo "check-size: over the 1 MiB gzip budget" >&2; exit 1; fi

clean:
	rm -rf build target .tools

## ---- fuzzing (not part of `make test`; see README, Fuzzing) ------------------------------------

.PHONY: fuzz fuzz-ci fuzz-tools

# schemathesis, with its dependencies pinned in tests/fuzz/requirements.txt, in its own
# virtualenv (git-ignored), made with the system's python3.
SCHEMATHESIS_VERSION := 4.32.5
FUZZ_VENV := tests/fuzz/.venv
# Depth: cases per operation and pass in the fuzzing phase (the examples, coverage and stateful
# phases come on top). The seed makes a run repeatable. FUZZ_MAX_TIME (seconds) makes each pass
# fuzz for that long instead; FUZZ_PASS_TIMEOUT (seconds) stops a pass that runs longer, and
# fails it. See tests/fuzz/run.mjs for the rest.
FUZZ_MAX_EXAMPLES ?= 100
FUZZ_SEED ?= 1
FUZZ_MAX_TIME ?=
FUZZ_PASS_TIMEOUT ?=
# The short pass .ci/run makes after `make test`: about 2-3 minutes on 2 cores, 5 at most.
FUZZ_CI_MAX_EXAMPLES := 30
FUZZ_CI_PASS_TIMEOUT := 300

fuzz: build fuzz-tools
	FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) FUZZ_MAX_TIME=$(FUZZ_MAX_TIME) \
	  FUZZ_PASS_TIMEOUT=$(FUZZ_PASS_TIMEOUT) node tests/fuzz/run.mjs

fuzz-ci:
	$(MAKE) fuzz FUZZ_MAX_EXAMPLES=$(FUZZ_CI_MAX_EXAMPLES) FUZZ_PASS_TIMEOUT=$(FUZZ_CI_PASS_TIMEOUT)

fuzz-tools: $(FUZZ_VENV)/.schemathesis-$(SCHEMATHESIS_VERSION)

$(FUZZ_VENV)/.schemathesis-$(SCHEMATHESIS_VERSION): tests/fuzz/requirements.txt
	env PATH="$(SYSTEM_PATH)" python3 -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/fuzz/requirements.txt
	@touch $@
