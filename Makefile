# Two entry points for a fresh machine: `make demo` and `make test`.
# SCIROBUST_TORCH overrides the torch requirement (default: the CPU build 2.13.0),
# e.g. `make test SCIROBUST_TORCH="torch==2.13.0+cu126"` or an index URL via PIP_EXTRA_INDEX_URL.
PYTHON ?= python3
VENV ?= .venv
SCIROBUST_TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.scirobust-installed
DEEPMD_STAMP := $(VENV)/.deepmd-installed

.PHONY: demo test lint install install-deepmd clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(SCIROBUST_TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,atomistic,weather,cases,llm,lm-eval,dft,universal,wireless]"
	touch $(STAMP)

install: $(STAMP)

# DeePMD-kit's PyTorch backend, built from source against the installed torch (its wheels pin
# torch 2.11); about 2 minutes on 2 cores.
$(DEEPMD_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q scikit-build-core cmake ninja setuptools_scm \
		hatch-fancy-pypi-readme dependency-groups e3nn
	DP_ENABLE_TENSORFLOW=0 DP_ENABLE_PYTORCH=1 DP_VARIANT=cpu $(BIN)/python -m pip install -q \
		--no-build-isolation --no-binary deepmd-kit deepmd-kit==3.2.0
	touch $(DEEPMD_STAMP)

install-deepmd: $(DEEPMD_STAMP)

demo: $(STAMP)
	$(BIN)/scirobust demo --output demo-output

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples scripts

test: lint install-deepmd
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
