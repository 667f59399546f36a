# Sockets lab. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

COMPOSE ?= docker compose
VENV ?= .venv
PYTHON ?= python3
PYTEST_ARGS ?=
FUZZ_SECONDS ?= 60

.PHONY: help up serve down logs images build compose base wheels deps test test-quick test-unit lint bench fuzz clean docs \
        check-server check-client exercise transcripts screenshots browser soak \
        swarm-up swarm-down cluster capture

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

up: images ## run the demo: server + client on their network; the client narrates, then all stop
	$(COMPOSE) up --exit-code-from client
	@echo "make up: demo finished. 'make logs' replays it, 'make serve' keeps a server running, 'make down' removes the containers."

serve: images ## start only the server (detached, healthy) for your own clients; PUBLISH=1: also on this host's 127.0.0.1
	$(COMPOSE) $(if $(PUBLISH),-f compose.yaml -f compose.publish.yaml) up --detach --wait server

down: ## stop and remove the stack (containers, network)
	$(COMPOSE) -f compose.yaml -f compose.publish.yaml down --volumes --remove-orphans

swarm-up: images ## the same lab as a Docker stack on this engine (a single-node swarm if it has none)
	scripts/swarm.sh up

swarm-down: ## remove the stack; leave swarm mode only if swarm-up entered it
	scripts/swarm.sh down

cluster: build deps ## the demo across three Docker hosts (containers running dockerd) in one swarm
	$(VENV)/bin/python scripts/cluster.py

capture: build deps ## run the demo under tcpdump: captures/demo-<time>.pcapng and the conversation decoded
	$(VENV)/bin/python scripts/capture.py

logs: ## show the stack's logs
	$(COMPOSE) logs --no-color

# Without buildx, compose falls back to its classic builder, and says so on every build.
QUIET_BUILD = 2>&1 | { grep -v "buildx isn't installed" || true; }

images: compose base ## build what the demo needs: the server and client images (make up, serve)
	@$(COMPOSE) build --quiet server client $(QUIET_BUILD)

build: images wheels ## every image: also the tools image (tcpdump, iperf3, socat, uvloop) for tests, bench, capture
	@$(COMPOSE) --profile tools build --quiet tools $(QUIET_BUILD)

compose: ## make sure `docker compose` (v2) is there; install the pinned plugin if not
	@scripts/install-compose.sh

base: ## choose the base image (public, or built from Debian's packages) and record it in .env
	@scripts/select-base.sh

wheels: ## download the benchmark's PyPI peers (uvloop) for the tools image, pinned by hash
	@scripts/fetch-wheels.sh

$(VENV)/.installed: requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

deps: $(VENV)/.installed ## the pinned Python packages and the project's own (editable), in .venv

# Five parts. In the background from the start (ALONGSIDE=1, the default), two that mostly wait:
# the cluster's tests (Docker hosts in containers, their own engines) and the conformance kit's
# tests, CHECK_WORKERS (3) at a time (each grades a program in its own containers and mostly
# waits on its timeouts), with the tests marked `with_kit` (the benchmark's smoke run and the
# soak: they assert no timing). Beside them, first the unit tests on twice as many workers as
# cores, at most 16 (in-process servers, loopback; much of their time is spent waiting on
# timers: 61 s against 92 s on 2 cores, on 4 workers against 2; UNIT_WORKERS=0: serially),
# then the integration suite on INTEGRATION_WORKERS (3; a module's tests stay together: see its
# conftest); the cluster's and the kit's output follows the integration suite's. Last, alone,
# the tests marked `alone` (test_bounded.py): they time how long a bystander waits while an
# attack runs, which nothing else on the machine may skew. ALONGSIDE=0 runs the first four one
# after another. JUNIT_DIR=dir writes dir/<part>.xml. Every part runs even if one before failed
# (Ctrl-C stops them all); the status is the first failure's.
UNIT_WORKERS ?= $(shell n=$$(( $$(nproc) * 2 )); echo $$(( n > 16 ? 16 : n )))
INTEGRATION_WORKERS ?= 3
CHECK_WORKERS ?= 3
ALONGSIDE ?= 1
PYTEST = $(VENV)/bin/pytest
workers = $(if $(filter 0 1,$(1)),,-n $(1) $(2))
junit = $(if $(JUNIT_DIR),--junitxml=$(JUNIT_DIR)/$(1).xml)
# (not "and": $(call and,...) runs make's own $(and ...), which dropped the " and (...)")
also = $(if $(1), and ($(1)))
define run_suite
	@status=0; logs=$$(mktemp -d); trap 'rm -rf "$$logs"' EXIT; \
	part() { \
	  case $$1 in \
	    unit) args="$(call workers,$(UNIT_WORKERS)) $(call junit,unit) tests/unit" \
	          mark="$(1)";; \
	    integration) args="$(call workers,$(INTEGRATION_WORKERS),--dist loadgroup) $(call junit,integration) tests/integration" \
	          mark="not check and not with_kit and not cluster and not alone$(call also,$(1))";; \
	    cluster) args="$(call junit,cluster) tests/integration" mark="cluster$(call also,$(1))";; \
	    check) args="$(call workers,$(CHECK_WORKERS)) $(call junit,check) tests/integration" \
	          mark="(check or with_kit)$(call also,$(1))";; \
	    alone) args="$(call junit,alone) tests/integration" mark="alone$(call also,$(1))";; \
	  esac; \
	  code=0; $(PYTEST) $$args $${mark:+-m "$$mark"} $(PYTEST_ARGS) || code=$$?; \
	  echo "make: $$1 tests: exit $$code"; return $$code; \
	}; \
	judge() { \
	  if [ $$1 = 2 ]; then exit 2; fi; \
	  if [ $$1 != 0 ] && [ $$1 != 5 ] && [ $$status = 0 ]; then status=$$1; fi; \
	}; \
	if [ "$(ALONGSIDE)" = 1 ]; then \
	  echo "make: the cluster's and the kit's tests run beside the unit tests and the integration suite; their output follows"; \
	  part cluster > "$$logs/cluster" 2>&1 & cluster=$$!; \
	  part check > "$$logs/check" 2>&1 & kit=$$!; \
	  unit_code=0; part unit || unit_code=$$?; \
	  code=0; if [ $$unit_code != 2 ]; then part integration || code=$$?; fi; \
	  cluster_code=0; wait $$cluster || cluster_code=$$?; cat "$$logs/cluster"; \
	  kit_code=0; wait $$kit || kit_code=$$?; cat "$$logs/check"; \
	  judge $$unit_code; judge $$code; judge $$cluster_code; judge $$kit_code; \
	else \
	  for serial in unit integration cluster check; do \
	    code=0; part $$serial || code=$$?; judge $$code; \
	  done; \
	fi; \
	echo "make: the tests marked alone run now, with nothing beside them"; \
	code=0; part alone || code=$$?; judge $$code; \
	exit $$status
endef

test: build deps browser ## unit tests, the integration suite against fresh stacks, the cluster's and the kit's tests (leaves nothing behind)
	$(call run_suite,)

test-quick: build deps browser ## the same without the slow groups
	$(call run_suite,not slow)

test-unit: deps ## the unit tests alone: no Docker engine needed (in-process servers, loopback)
	$(PYTEST) $(call workers,$(UNIT_WORKERS)) tests/unit $(PYTEST_ARGS)

bench: build deps ## the benchmark: project vs asyncio, uvloop, socat, iperf3; rr over 1-1,024 connections, 1,000-100,000 held (BENCH_QUICK=1: fewer)
	$(VENV)/bin/python scripts/bench.py

# The conformance kit (docs/check.md): PROGRAM=path/to/program.py, or IMAGE=name (any language).
CHECK_ARGS = $(if $(PROGRAM),--program $(PROGRAM)) $(if $(IMAGE),--image $(IMAGE)) \
	$(if $(ARGS),--args "$(ARGS)") $(if $(REPORT),--report $(REPORT)) $(if $(CASES),--cases "$(CASES)")

check-server: build deps ## grade a server across hosts: PROGRAM=server.py or IMAGE=, [PROTOCOLS=echo,udp,greet,app] [PORT_ECHO=..] [CASES=reach.*,..] [REPORT=path/report.json]
	$(VENV)/bin/python -m labcheck server $(CHECK_ARGS) $(if $(PROTOCOLS),--protocols $(PROTOCOLS)) \
	  $(if $(PORT_ECHO),--port-echo $(PORT_ECHO)) $(if $(PORT_UDP),--port-udp $(PORT_UDP)) \
	  $(if $(PORT_GREET),--port-greet $(PORT_GREET)) $(if $(PORT_APP),--port-app $(PORT_APP))

exercise: build deps ## grade a learning-path exercise (docs/learn.md): N=1..5 [PROGRAM=your copy]; no N: list them
	$(VENV)/bin/python -m labcheck exercise $(N) $(if $(PROGRAM),--program $(PROGRAM))

check-client: build deps ## grade an echo client against unkind proving servers: PROGRAM=client.py or IMAGE=, [ARGS="{host} {message}"] [CASES=..] [REPORT=..]
	$(VENV)/bin/python -m labcheck client $(CHECK_ARGS)

fuzz: deps ## coverage-guided fuzzing (atheris) of the codec, the app and the client, with a cost oracle, FUZZ_SECONDS (60) each
	@mkdir -p .fuzz/codec .fuzz/app .fuzz/client .fuzz/crashes
	@for target in codec app client; do \
	  echo "fuzz: $$target for $(FUZZ_SECONDS)s (new inputs in .fuzz/$$target, crashes in .fuzz/crashes)"; \
	  $(VENV)/bin/python tests/fuzz/run.py $$target -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
	    -artifact_prefix=.fuzz/crashes/ .fuzz/$$target tests/fuzz/seeds/$$target \
	    > .fuzz/$$target.log 2>&1 || { tail -n 40 .fuzz/$$target.log; exit 1; }; \
	  grep -E '^Done' .fuzz/$$target.log; \
	done

docs: deps ## write the documents generated from the code (the client's JSON schema, ...)
	$(VENV)/bin/python scripts/docs.py

screenshots: build deps browser ## the pictures in the docs, made by the code that draws them (docs/ladder.png)
	$(VENV)/bin/python scripts/screenshots.py

browser: ## headless Chromium and its chromedriver for the page tests (Debian's packages, if missing)
	@scripts/install-browser.sh

SOAK_SECONDS ?= 120
soak: build deps ## a seeded chaos soak: clients, overlapping faults, every operation checked [SOAK_SECONDS=120] [SOAK_SEED=] [TARGET=cluster]
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_SEED=$(SOAK_SEED) TARGET=$(TARGET) $(VENV)/bin/python -m labsoak

transcripts: build deps ## run the commands the docs quote again and write in their output, dated [ONLY=docs/check.md]
	$(VENV)/bin/python scripts/transcripts.py $(if $(ONLY),--only $(ONLY))

PACKAGES := lab labserver labclient labtutorial labbench labprobe labstack labtools labcheck labsoak

lint: deps ## ruff, mypy (strict for lab and the server), hadolint (Dockerfiles), actionlint
	$(VENV)/bin/ruff check services tests scripts tools docs/exercises docs/check
	$(VENV)/bin/ruff format --check services tests scripts tools docs/exercises docs/check
	$(VENV)/bin/mypy $(addprefix -p ,$(PACKAGES))
	$(VENV)/bin/mypy scripts tests/unit tests/fuzz tests/*.py
	$(VENV)/bin/mypy tests/integration
	$(VENV)/bin/hadolint services/*/Dockerfile
	$(VENV)/bin/actionlint .github/workflows/*.yml

clean: down ## remove the stack, the venv and .env (images stay; `docker image rm` them if you like)
	rm -rf $(VENV) .env .pytest_cache .ruff_cache
