# Two entry points for a fresh machine: `make demo` and `make test`.
# SCIROBUST_TORCH overrides the torch requirement (default: the CPU build 2.13.0),
# e.g. `make test SCIROBUST_TORCH="torch==2.13.0+cu126"` or an index URL via PIP_EXTRA_INDEX_URL.
PYTHON ?= python3
VENV ?= .venv
SCIROBUST_TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.scirobust-installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(SCIROBUST_TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,atomistic,weather,cases,llm]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/scirobust demo --output demo-output

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples scripts

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
