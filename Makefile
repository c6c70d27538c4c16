# gardenlab: `make help` lists the targets. Every target creates .venv itself when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HARNESS := $(BIN)/harness
PRESET ?= fast

.DEFAULT_GOAL := help
.PHONY: help venv dev-up dev-down status logs migrate seed verify test test-unit lint bench-rto \
	test-failover chaos load load-chaos load-capacity \
	bench-startup bench-seed bench-import bench-import-chaos bench-proxy bench-migration bench-switchover bench-plans bench-monitoring backup backups restore drill bench-backup migration-drill gate render rehearse

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed ## Create or refresh the virtualenv in .venv

dev-up: venv ## Bring the lab up and prove it healthy (PRESET=fast|normal|safe, SUPABASE=1, SOURCE=1)
	$(HARNESS) up --preset $(PRESET) $(if $(SUPABASE),--supabase) \
		$(if $(SOURCE),--source --source-scale $(or $(SOURCE_SCALE),small))

dev-down: venv ## Stop and remove the lab; data volumes kept (VOLUMES=1 deletes them)
	$(HARNESS) down $(if $(VOLUMES),--volumes)

status: venv ## Members, roles, timelines, lag and HAProxy routing
	$(HARNESS) status

logs: venv ## Recent logs of every service (SERVICE=pg1 for one)
	$(HARNESS) logs $(SERVICE)

migrate: venv ## Apply the CRM schema's migrations (dev-up does it too)
	$(HARNESS) migrate

seed: venv ## Seed CRM data (SCALE=small|prod, SEED=42, RESET=1 to replace other data)
	$(HARNESS) seed --scale $(or $(SCALE),small) --seed $(or $(SEED),42) $(if $(RESET),--reset)

verify: venv ## Row counts and checksums per table on every node
	$(HARNESS) verify

test-failover: venv ## Leader kill under write load: RTO, lost/unknown/ghost writes, JSON + PNG
	$(HARNESS) chaos run leader-kill --out artifacts/failover

chaos: venv ## The whole scenario catalog on a real stack (RUNS=10 repeats it)
	$(BIN)/pytest tests/chaos -m chaos --runs $(or $(RUNS),1)

LOAD_ARGS = --users $(or $(USERS),100) --via $(or $(VIA),haproxy) --processes $(or $(PROCESSES),1) \
	$(foreach t,$(THRESHOLDS),--threshold $(t))

load: venv ## Locust on the seeded CRM: 100 users, 3 min; exit 1 on p95 >= 100 ms (all or any request type) or > 0.1 % errors; IMPORT=100000 adds a CSV import
	$(HARNESS) load $(LOAD_ARGS) $(if $(IMPORT),--with-import $(IMPORT),--duration $(or $(DURATION),3m))

load-chaos: venv ## The same load while a scenario runs (SCENARIO=leader-kill); fault window apart
	$(HARNESS) load $(LOAD_ARGS) --scenario $(or $(SCENARIO),leader-kill)

load-capacity: venv ## Step the users (START=50 STEP=50 CEILING=400 STEP_DURATION=30s) until a threshold breaks; the knee, a plot, pgbench beside it
	$(HARNESS) load --find-capacity --via $(or $(VIA),haproxy) --processes $(or $(PROCESSES),1) \
		--start $(or $(START),50) --step $(or $(STEP),50) --ceiling $(or $(CEILING),400) \
		--step-duration $(or $(STEP_DURATION),30s) $(foreach t,$(THRESHOLDS),--threshold $(t))

backup: venv ## pgBackRest backup on the leader (TYPE=full|diff|incr)
	$(HARNESS) backup --type $(or $(TYPE),full)

backups: venv ## List the backups and the archived WAL range
	$(HARNESS) backups

restore: venv ## Replace the cluster with a backup's state (TIME='2026-11-22 10:30:00+00'; asks first)
	$(HARNESS) restore $(if $(TIME),--time '$(TIME)')

drill: venv ## Timed restore drill: back up, mark a point, lose the cluster, restore, verify
	$(HARNESS) drill --scale $(or $(SCALE),small)

gate: venv ## Go / no-go checks + Locust against a cluster (TARGET=docs/inventory.lab.yml, DISRUPTIVE=1)
	$(HARNESS) gate --target $(or $(TARGET),docs/inventory.lab.yml) $(if $(DISRUPTIVE),--allow-disruptive)

render: venv ## Render the tested configuration for servers (INVENTORY=..., OUT=bundle)
	$(HARNESS) render --inventory $(or $(INVENTORY),docs/inventory.example.yml) --out $(or $(OUT),bundle)

rehearse: venv ## Apply the rendered playbook to three bare Debian 13 containers and check the cluster
	$(HARNESS) rehearse

lint: venv ## ruff (lint + format check), mypy --strict, the import layers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test-unit: venv ## Fast unit tests only (no engine needed)
	$(BIN)/pytest tests/unit

test: lint ## Lint, unit, proxy conformance, integration and the CI chaos subset (real stack)
	$(BIN)/pytest -m "not chaos or chaos_ci" --durations=25

bench-startup: venv ## Figures: cold and warm start, memory of the running stack
	$(BIN)/python -m benchmarks.startup $(if $(COLD),--cold)

bench-seed: venv ## Figures: seeding end to end vs COPY of ready rows vs pgbench -i
	$(BIN)/python -m benchmarks.seed --scale $(or $(SCALE),prod)

bench-import: venv ## Figures: CSV import rows/s vs harness seed's COPY rate, service memory (ROWS=100000)
	$(BIN)/python -m benchmarks.csv_import $(foreach r,$(or $(ROWS),100000),--rows $(r))

bench-import-chaos: venv ## Figures: the exactly-once import scenarios over RUNS runs (default 5): pass rate, run and import times
	$(BIN)/python -m benchmarks.import_chaos --runs $(or $(RUNS),5) $(if $(SCENARIOS),--scenarios $(SCENARIOS))

bench-rto: venv ## Figures: RTO p50/p95 and alert latency per scenario over RUNS runs (default 5) on the dev lab (SCENARIOS=ci: the CI subset)
	$(BIN)/python -m benchmarks.chaos_rto --runs $(or $(RUNS),5) $(if $(filter ci,$(SCENARIOS)),--ci,$(if $(SCENARIOS),--scenarios $(SCENARIOS)))

bench-switchover: venv ## Figures: a switchover's client errors and largest gap, via PgBouncer and direct (RUNS=5)
	$(BIN)/python -m benchmarks.switchover --runs $(or $(RUNS),5)

bench-monitoring: venv ## Figures: monitoring's memory and CPU at rest and under load, the alerts a steady load fires (must be none), scraping's effect on p95 (USERS=100 MINUTES=10 PAIRS=2)
	$(BIN)/python -m benchmarks.monitoring --users $(or $(USERS),100) --minutes $(or $(MINUTES),10) --pairs $(or $(PAIRS),2)

bench-backup: venv ## Figures: full backup, WAL archived per minute under load, restore drill RTO
	$(BIN)/python -m benchmarks.backup

migration-drill: venv ## The move rehearsed on the lab (SOURCE=1 up): writers, failovers, cutover, rollback; exit 1 on a failed check
	$(HARNESS) migration drill

bench-migration: venv ## Figures: initial copy vs dump/restore, cutover and rollback write gaps (RUNS=5)
	$(BIN)/python -m benchmarks.migration --runs $(or $(RUNS),5)

bench-plans: venv ## Plans of the CRM mix's statements as the tenant sees them (REQUEST=dashboard)
	$(BIN)/python -m benchmarks.plans $(if $(REQUEST),--request $(REQUEST))

bench-proxy: venv ## Figures: one fault-proxy hop vs direct; its cost in the running lab
	$(BIN)/python -m benchmarks.faultproxy_hop
	$(BIN)/python -m benchmarks.proxy_cost

help: ## This list
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
