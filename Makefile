# Tollgate — the two commands are `make dev` and `make test`.
# Everything a target needs is installed by the target itself into .venv.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
CARGO ?= cargo
DEV_PORT ?= 9101
FUNCTIONS := purchase-webhook pubsub-push oauth-callback entitlement-check

# moto_server for the DynamoDB tests; the test harness starts and stops it.
export TOLLGATE_MOTO_SERVER := $(CURDIR)/$(VENV)/bin/moto_server

.PHONY: help dev dev-reset demo test lint build deploy plan infra-check bench mutants deny clean-venv rust-components

help:
	@echo "make dev     run the four functions locally on the embedded store"
	@echo "make dev-reset  make dev from a clean store (secrets kept)"
	@echo "make demo    a narrated tour of GitHub, Google and Q2 against make dev (starts one if none runs)"
	@echo "make test    fmt check, clippy -D warnings, every test (DynamoDB ones on moto)"
	@echo "make screenshots  the customer pages in headless Chromium, desktop and phone, into SCREENSHOTS_DIR"
	@echo "make build   release arm64 Lambda zips (cargo-lambda)"
	@echo "make bench   every performance budget against its reference, one table (builds the zips first)"
	@echo "make deny    supply-chain policy (deny.toml): licenses, bans, sources, advisories when fetchable"
	@echo "make mutants mutation testing of the pure core (cargo-mutants; slow, not in make test)"
	@echo "make deploy  build, then terraform apply infra/ with infra/tollgate.tfvars (TFVARS=... for another file)"
	@echo "make plan    build, then terraform plan (what deploy would change)"
	@echo "make infra-check  offline Terraform checks: fmt, validate (as far as it goes offline), checkov"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(VENV)/.test-tools: tools/requirements-test.txt tools/requirements-zip.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r $<
	touch $@

$(VENV)/.build-tools: tools/requirements-build.txt tools/requirements-zip.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r $<
	touch $@

# checkov in a venv of its own inside .venv: it pins many libraries moto uses too.
CHECKOV_VENV := $(VENV)/checkov
$(CHECKOV_VENV)/.installed: tools/requirements-infra.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet -r $<
	touch $@

rust-components:
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

# The four functions on ports DEV_PORT..+3, the GitHub stand-ins on
# DEV_PORT+100/+101 and the Google stand-in on DEV_PORT+102, all in one
# process, on the embedded store. The secrets file gets the stand-in app's
# credentials, a webhook secret (generated once), which
# `./target/debug/tollgate fire github ...` then signs with, and the Google
# stand-in's service-account key (`fire gcp ...` drives that stand-in).
dev:
	$(CARGO) build --locked -p tollgate-cli
	@mkdir -p .tollgate
	TOLLGATE_CONFIG=$${TOLLGATE_CONFIG:-$$( [ -f tollgate.toml ] && echo tollgate.toml || echo tollgate.example.toml )} \
	TOLLGATE_ALLOW_UNAUTHENTICATED=1 \
	TOLLGATE_STORE=sqlite:.tollgate/dev.db \
	TOLLGATE_SECRETS=file:.tollgate/secrets.json \
	  ./target/debug/tollgate dev --port $(DEV_PORT)

# `make dev` from a clean slate: `tollgate dev --reset` deletes the dev store
# (.tollgate/dev.db) first; the stand-ins always start fresh, and the secrets
# file (.tollgate/secrets.json) keeps its generated secrets.
dev-reset:
	$(CARGO) build --locked -p tollgate-cli
	@mkdir -p .tollgate
	TOLLGATE_CONFIG=$${TOLLGATE_CONFIG:-$$( [ -f tollgate.toml ] && echo tollgate.toml || echo tollgate.example.toml )} \
	TOLLGATE_ALLOW_UNAUTHENTICATED=1 \
	TOLLGATE_STORE=sqlite:.tollgate/dev.db \
	TOLLGATE_SECRETS=file:.tollgate/secrets.json \
	  ./target/debug/tollgate dev --port $(DEV_PORT) --reset

# A narrated tour of GitHub, Google and Q2 (`tollgate demo`) against the dev
# server on DEV_PORT. When nothing listens there, it starts `tollgate dev`
# in the background for the tour (log: .tollgate/demo-dev.log) and stops it
# (by its PID) afterwards; a running `make dev` is used as it is. Each run
# plays new customers, so it needs no reset.
demo:
	$(CARGO) build --locked -p tollgate-cli
	@mkdir -p .tollgate
	@export TOLLGATE_CONFIG=$${TOLLGATE_CONFIG:-$$( [ -f tollgate.toml ] && echo tollgate.toml || echo tollgate.example.toml )}; \
	if (exec 3<>/dev/tcp/127.0.0.1/$(DEV_PORT)) 2>/dev/null; then \
	  ./target/debug/tollgate demo --port $(DEV_PORT); \
	else \
	  echo "make demo: no dev server on port $(DEV_PORT); starting tollgate dev for the tour (log: .tollgate/demo-dev.log)"; \
	  TOLLGATE_ALLOW_UNAUTHENTICATED=1 TOLLGATE_STORE=sqlite:.tollgate/dev.db TOLLGATE_SECRETS=file:.tollgate/secrets.json \
	    ./target/debug/tollgate dev --port $(DEV_PORT) > .tollgate/demo-dev.log 2>&1 & pid=$$!; \
	  trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null || true' EXIT; \
	  ./target/debug/tollgate demo --port $(DEV_PORT) --wait 30; \
	fi

lint: rust-components
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

# The release binaries first: tests/tests/lambda_runtime.rs runs them under a
# local Lambda Runtime API (the same build, for the host; alone, so features
# resolve as in `make build`). The test builds them too if run without make.
test: lint deny $(VENV)/.test-tools infra-check browser-tools
	$(CARGO) build --locked --release $(addprefix -p ,$(FUNCTIONS))
	$(CARGO) test --locked --workspace --all-targets

# Headless Chromium and its WebDriver for tests/tests/browser.rs: Debian's
# chromium and chromium-driver, installed with apt-get when missing (nothing
# is downloaded from anywhere else; apt-get needs root).
.PHONY: browser-tools screenshots
browser-tools:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "the browser tests need Debian's chromium and chromium-driver: run as root, or apt-get install chromium chromium-driver"; exit 1; \
	else \
	  echo "installing Debian's chromium and chromium-driver for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	fi

# Every customer page (GitHub sign-in, Google sign-up, their error pages)
# as the browser test sees it, desktop and phone (390x844), as PNGs.
SCREENSHOTS_DIR ?= target/screenshots/pages
screenshots: browser-tools
	rm -rf $(SCREENSHOTS_DIR) && mkdir -p $(SCREENSHOTS_DIR)
	TOLLGATE_SCREENSHOTS=$(abspath $(SCREENSHOTS_DIR)) $(CARGO) test --locked -p tollgate-tests --test browser
	@echo "screenshots: $$(ls $(SCREENSHOTS_DIR) | wc -l) files in $(SCREENSHOTS_DIR)"

# The zips are then re-deflated with Zopfli (tools/repack_zips.py): same
# binary, same zip format, about 3.5 % smaller (README "Budgets, measured").
build: $(VENV)/.build-tools
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 --output-format zip \
	  $(addprefix -p ,$(FUNCTIONS))
	$(VENV)/bin/python tools/repack_zips.py $(addsuffix /bootstrap.zip,$(addprefix target/lambda/,$(FUNCTIONS)))

# Every budget against its reference in the same run (README "Budgets,
# measured"): criterion's CPU benchmarks first (absolute figures per step),
# then tests/benches/functions.rs: the release binaries under a local
# Runtime API (cold start, first request, RSS), /v1/check against a bare SDK
# Query on moto, GitHub verify + parse interleaved with bare implementations,
# the zips `build` just made, and the scale check. Sizes:
# TOLLGATE_BENCH_STARTS, _ROUNDS, _CHECKS, _WEBHOOK_ROUNDS, _SCALE_MAX;
# TOLLGATE_BENCH_ONLY picks sections.
bench: build $(VENV)/.test-tools
	$(CARGO) bench --locked -p tollgate-shared --features test-support
	$(CARGO) bench --locked -p tollgate-tests --bench functions

# Mutation testing (README "Mutation testing"): cargo-mutants, pinned and
# installed into .tools/ on first use, mutates the core's rules, entitlement
# decisions, signature checks and payload parsers (.cargo/mutants.toml) and
# runs tollgate-core's tests against each mutant, in its own copy of the tree
# and target dir. One job: a machine has two cores and other builds run.
# cargo-mutants exits 2 when a mutant survives (3 on a timeout), so the verdict is
# tools/mutants_report.py's: at least 95 % of viable mutants caught, and
# every survivor is one the README lists.
MUTANTS_VERSION := 27.0.0
TOOLS := .tools
$(TOOLS)/.cargo-mutants-$(MUTANTS_VERSION):
	$(CARGO) install --locked cargo-mutants@$(MUTANTS_VERSION) --root $(TOOLS)
	touch $@

mutants: $(TOOLS)/.cargo-mutants-$(MUTANTS_VERSION)
	$(TOOLS)/bin/cargo-mutants mutants --package tollgate-core --jobs 1 $(MUTANTS_ARGS) \
	  || { rc=$$?; [ $$rc -eq 2 ] || [ $$rc -eq 3 ]; }
	$(PYTHON) tools/mutants_report.py mutants.out README.md

# Supply chain (deny.toml, README "Supply chain"): licenses, bans (duplicate
# versions, a second TLS or crypto stack) and sources always; advisories when
# RustSec's database (a git repository on GitHub) can be fetched, skipped
# with the reason otherwise. cargo-deny is pinned and installed into .tools/
# as a debug build: 1.5 min to build instead of 5 on 2 cores (it keeps
# `make test` on a fresh clone under 15 min), and the check still takes 2 s.
DENY_VERSION := 0.18.9
$(TOOLS)/.cargo-deny-$(DENY_VERSION):
	$(CARGO) install --locked --debug cargo-deny@$(DENY_VERSION) --root $(TOOLS)
	touch $@

deny: $(TOOLS)/.cargo-deny-$(DENY_VERSION)
	@if timeout 120 $(TOOLS)/bin/cargo-deny fetch >/dev/null 2>&1; then \
	  $(TOOLS)/bin/cargo-deny --locked check; \
	else \
	  echo "cargo deny: advisories SKIPPED: RustSec's advisory database (github.com/RustSec/advisory-db) cannot be fetched from this machine"; \
	  $(TOOLS)/bin/cargo-deny --locked check bans licenses sources; \
	fi

# Offline checks of infra/ (no AWS, no provider download): terraform fmt and
# validate (skipped with the reason when terraform or its providers are
# missing), then checkov with zero failed checks. tests/tests/infra.rs (in
# `cargo test`) checks the Lambdas and IAM grants against the code.
infra-check: $(CHECKOV_VENV)/.installed
	CHECKOV=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov bash infra/check.sh

# Preflight first (terraform, the tfvars file, AWS credentials: a clear
# message and exit 1 when one is missing), then the zips, then Terraform.
plan deploy:
	@bash infra/tf.sh preflight $@
	$(MAKE) --no-print-directory build
	@bash infra/tf.sh $@

clean-venv:
	rm -rf $(VENV)
