# Two commands on a fresh machine:  make demo  (the main job)  and  make test  (the tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Batched event writes, one planned event per asset per run: every Dagster process started here
# (UI, daemon, run workers, demo, tests) inherits them. Why and the caveat:
# trading_assets/event_writes.py; figures: BENCHMARKS.md "Backfill throughput".
export DAGSTER_EVENT_BATCH_SIZE ?= 500
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= true

.PHONY: setup demo paper-broker test browser lint ui ui-postgres transcript clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Bytecode compiled once here (as pip does by default, uv does not): where PYTHONDONTWRITEBYTECODE
# is set, every Dagster process (run workers, code servers, the daemon) would otherwise compile
# its ~6,000 imported modules anew, ~8 s of CPU each (BENCHMARKS.md, "The test command").
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

setup: $(VENV)/.installed  ## create .venv with the pinned dependencies

demo: setup  ## replay one bundled real session live: daemon, sensor, paper broker (no keys)
	$(BIN)/python -m trading_assets.main $(if $(SESSION),--session $(SESSION),) $(ARGS)

paper-broker: setup  ## the embedded paper broker on 127.0.0.1:8765 (the embedded default URL)
	$(BIN)/python -m resources.paper_broker --db data/paper_broker.sqlite --port 8765

test: setup browser  ## the whole test suite (needs the local PostgreSQL on 127.0.0.1:5432)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# The UI tests drive Debian's Chromium (never a downloaded browser); installed here when it is
# missing and this user can, else those tests are skipped and say so.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { apt-get install -y -q chromium >/dev/null 2>&1 \
	       || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; }; } \
	  || echo "Chromium is not installed (apt-get install chromium): the UI tests will be skipped"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# The UI has no login and can launch runs (live trading among them): it listens on this machine
# only unless told otherwise, e.g. `make ui UI_HOST=0.0.0.0` behind your own authenticating proxy.
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000

ui: setup  ## the Dagster UI and daemon on http://127.0.0.1:3000 (UI_HOST, UI_PORT), instance in DAGSTER_HOME; Ctrl-C stops it
	$(BIN)/python -m trading_assets.ui --host "$(UI_HOST)" --port "$(UI_PORT)"

ui-postgres: setup  ## the same on a Postgres instance (DAGSTER_PG_* variables, see README)
	mkdir -p "$(DAGSTER_HOME)"
	cp dagster.yaml.example "$(DAGSTER_HOME)/dagster.yaml"
	$(BIN)/python -m trading_assets.ui --host "$(UI_HOST)" --port "$(UI_PORT)"

transcript: setup  ## a minute's debate transcripts: make transcript MINUTE="2026-03-23 10:15" [TICKER=META]
	$(BIN)/python -m trading_assets.transcript "$(MINUTE)" $(TICKER)

clean:  ## stop the instance's embedded PostgreSQL (by its PID), remove data/ and .dagster_home
	-@[ ! -x $(BIN)/python ] || $(BIN)/python -m trading_assets.instance stop
	rm -rf data .dagster_home .pytest_cache
