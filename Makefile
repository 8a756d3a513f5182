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

.PHONY: help dev test lint build deploy bench clean-venv rust-components

help:
	@echo "make dev     run the four functions locally on the embedded store"
	@echo "make test    fmt check, clippy -D warnings, every test (DynamoDB ones on moto)"
	@echo "make build   release arm64 Lambda zips (cargo-lambda)"
	@echo "make bench   criterion benchmarks (decision, webhook verify+parse, rules)"
	@echo "make deploy  deploy with Terraform (infra/)"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(VENV)/.test-tools: tools/requirements-test.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r $<
	touch $@

$(VENV)/.build-tools: tools/requirements-build.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r $<
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

lint: rust-components
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

test: lint $(VENV)/.test-tools
	$(CARGO) test --locked --workspace --all-targets

build: $(VENV)/.build-tools
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 --output-format zip \
	  $(addprefix -p ,$(FUNCTIONS))
	@ls -l target/lambda/*/bootstrap.zip

bench:
	$(CARGO) bench --locked -p tollgate-shared --features test-support
	$(CARGO) build --locked --release $(addprefix -p ,$(FUNCTIONS)) -p coldstart-hello
	$(PYTHON) tools/coldstart.py 30 target/release/coldstart-hello $(addprefix target/release/,$(FUNCTIONS))

deploy:
	@echo "make deploy: the Terraform in infra/ has not landed yet (it is its own issue)." >&2
	@echo "Until then there is nothing to deploy; 'make build' produces the Lambda zips." >&2
	@exit 1

clean-venv:
	rm -rf $(VENV)
