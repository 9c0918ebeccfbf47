# Two commands for a fresh machine: `make run` and `make test`. Each starts what it needs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

DEV := .dev
SERVICES := scripts/dev-services
# Every recipe that talks to PostgreSQL or Redis loads their URLs from the dev services.
WITH_SERVICES := eval "$$($(SERVICES) env)";

.PHONY: help run test services cluster stop-services migrate lint fmt bench deploy-check clean-test-dbs

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

run: services $(DEV)/jwt-secret ## Start PostgreSQL + Redis, migrate, and serve on :3001
	$(WITH_SERVICES) export JWT_SECRET="$$(cat $(DEV)/jwt-secret)" LOG_FORMAT=$${LOG_FORMAT:-pretty}; \
	cargo build --release --bin bosar-chat; \
	target/release/bosar-chat migrate; \
	exec target/release/bosar-chat serve

test: services cluster clean-test-dbs ## Start PostgreSQL + Redis (and a Redis Cluster) and run every test
	$(WITH_SERVICES) eval "$$($(SERVICES) cluster-env)"; \
	if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --no-fail-fast; \
	else \
		cargo test --workspace --no-fail-fast; \
	fi
	$(MAKE) test-web

.PHONY: test-web
test-web: services ## Browser tests: the demo page in headless Chromium against two real nodes
	scripts/web-test-setup
	cargo build --bin bosar-chat
	$(WITH_SERVICES) node --test web/tests/

lint: ## rustfmt and clippy, warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	cargo fmt --all

services: ## Start the local PostgreSQL (pgvector) and Redis if they are not running
	$(SERVICES) start

stop-services: ## Stop the local PostgreSQL (and any Redis the script started)
	$(SERVICES) cluster-stop
	$(SERVICES) stop

cluster: ## Start a local 3-node Redis Cluster (sharded pub/sub tests)
	$(SERVICES) cluster-start

migrate: services ## Apply pending migrations to the dev database
	$(WITH_SERVICES) cargo run --quiet --bin bosar-chat -- migrate

clean-test-dbs: services
	$(SERVICES) drop-test-dbs

deploy-check: ## Lint the Dockerfile, CloudFormation and scripts; run the deploy scripts against moto
	scripts/deploy-check

# A development-only signing key, made once and kept out of git.
$(DEV)/jwt-secret:
	mkdir -p $(DEV)
	umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n' > $@

bench: services ## Group-commit benchmark (committed messages/s and ack latency)
	$(WITH_SERVICES) cargo bench --bench commit
