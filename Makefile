# seqline — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
LISTEN ?= 127.0.0.1:7600
DATA ?= ./seqline-data
SECRET ?= seqline-dev-secret-change-me
URL ?= ws://$(LISTEN)/v1/ws

.PHONY: run build build-deps test test-tools static bench traffic fmt clean-data up down chaos cluster cluster-down

## Build and start `seqline dev` (embedded, one process) on $(LISTEN).
run: build-deps
	$(CARGO) build --release -p seqline -p seqline-client --bins
	./target/release/seqline dev --listen $(LISTEN) --data $(DATA)

build: build-deps
	$(CARGO) build --release --workspace --bins

## Every test: unit, property, contract, end-to-end over real WebSockets,
## crash, cluster processes and chaos. Starts Apache Kafka and Apache
## Cassandra on private loopback ports for the run and stops them after
## (scripts/test.sh); tests start their own redis-server.
test: test-tools
	bash scripts/test.sh

## Installs what the tests need when it is missing: cargo-nextest, Debian's
## redis-server, Java 17, Maven, docker-compose (it checks the compose file,
## its PyYAML reads it for the compose and Helm tests, and `make up` runs it),
## helm (built with Go into $(go env GOPATH)/bin, which scripts/test.sh puts
## on PATH), and the Kafka and Cassandra jars (from Maven Central, once, into
## .engines/).
HELM_VERSION ?= v3.21.4
## What the build links against: OpenSSL (TLS to Kafka, Redis and
## Cassandra/ScyllaDB), found through pkg-config. Installed from Debian when
## missing (as root), else the command to run is printed.
build-deps:
	@pkg-config --exists openssl 2>/dev/null || { \
	  echo "installing Debian packages: libssl-dev pkg-config (the build links OpenSSL)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config >/dev/null) || \
	  { echo "could not install them: run 'apt-get install libssl-dev pkg-config' as root"; exit 1; }; }

test-tools: build-deps
	@command -v cargo-nextest >/dev/null 2>&1 || $(CARGO) install cargo-nextest --locked
	@command -v helm >/dev/null 2>&1 || [ -x "$$(go env GOPATH 2>/dev/null)/bin/helm" ] || { \
	  command -v go >/dev/null 2>&1 || { echo "helm is missing and Go is needed to build it: install Go, or helm 3 on PATH"; exit 1; }; \
	  echo "building helm $(HELM_VERSION) into $$(go env GOPATH)/bin (a few minutes, once)"; \
	  GOFLAGS=-mod=mod go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); }
	@missing=""; \
	  command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	  command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	  command -v mvn >/dev/null 2>&1 || missing="$$missing maven"; \
	  command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	  python3 -c 'import yaml' >/dev/null 2>&1 || missing="$$missing python3-yaml"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) || \
	    { echo "could not install$$missing: run 'apt-get install$$missing' as root"; exit 1; }; \
	  fi
	@bash scripts/kafka.sh install
	@bash scripts/cassandra.sh install

## Formatting and lints, warnings are errors.
static:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Benchmark tables: W6 in process; W1 closed and open loop, W2 and W3 against a
## fresh `seqline dev` started on a private port and stopped afterwards.
bench: test-tools
	bash scripts/bench.sh

## Drive realistic load (W1) against a running instance: make traffic URL=ws://host:port/v1/ws
traffic:
	$(CARGO) run --release -p seqline-loadgen -- w1 --url $(URL) --secret $(SECRET) --users 200 --messages 20000 --window 8

## Cluster mode on one machine without Docker: Apache Kafka, Apache Cassandra,
## redis-server and the roles (two gateways, a persister, a fanout) as
## processes, data and logs under $(CLUSTER_DIR). `make traffic` works against it.
CLUSTER_DIR ?= ./seqline-cluster
cluster: test-tools
	$(CARGO) build --release -p seqline
	CLUSTER_DIR=$(CLUSTER_DIR) LISTEN=$(LISTEN) SECRET=$(SECRET) bash scripts/cluster.sh up

cluster-down:
	CLUSTER_DIR=$(CLUSTER_DIR) LISTEN=$(LISTEN) bash scripts/cluster.sh down

## Cluster mode on one machine with Docker: Kafka, ScyllaDB, Redis, the roles,
## observability. COMPOSE is the tool `make test-tools` installs (Debian's
## docker-compose); `make up COMPOSE="docker compose"` uses the v2 plugin.
## The gateway gets $(SECRET), so `make traffic` works against it.
COMPOSE ?= docker-compose
up:
	SEQLINE_SECRET=$(SECRET) $(COMPOSE) -f deploy/docker-compose.yml up -d --build

down:
	$(COMPOSE) -f deploy/docker-compose.yml down -v

clean-data:
	rm -rf $(DATA)

## Fuzz every decoder of outside bytes for FUZZ_SECONDS each (nightly, cargo-fuzz;
## not part of `make test`). Seeds in fuzz/corpus, findings in fuzz/artifacts.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

## Chaos (W7): W1 + W2 through a fault proxy while a seeded schedule injects
## the faults of docs/chaos.md (F1-F14), then heal, re-read and run the checker; once per
## mode in CHAOS_MODES. Prints the seed, the faults per id and the count per
## check; fails on any anomaly. Long runs: make chaos CHAOS_DURATION=15m
CHAOS_MODES ?= embedded cluster
CHAOS_SEED ?= 1
CHAOS_DURATION ?= 2m
CHAOS_ARGS ?=
chaos: test-tools
	$(CARGO) build --release -p seqline -p seqline-chaos
	@set -e; for mode in $(CHAOS_MODES); do \
	  ./target/release/seqline-chaos --mode $$mode --seed $(CHAOS_SEED) --duration $(CHAOS_DURATION) $(CHAOS_ARGS); \
	done
