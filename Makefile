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

# MACE (mace-torch 0.3.16) gets its own venv: it pins e3nn 0.4.4, while DeePMD-kit 3.2 in
# $(VENV) needs e3nn 0.6 (`dp --pt train` breaks with 0.4.4), so the two extras cannot share
# one environment. CHGNet (universal) comes along because the silicon case uses it as reference.
MACE_VENV ?= .venv-mace
MACE_STAMP := $(MACE_VENV)/.scirobust-mace-installed

.PHONY: install-mace test-mace

$(MACE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(MACE_VENV)
	$(MACE_VENV)/bin/python -m pip install -q --upgrade pip
	$(MACE_VENV)/bin/python -m pip install -q "$(SCIROBUST_TORCH)"
	$(MACE_VENV)/bin/python -m pip install -q -e ".[dev,atomistic,cases,universal,mace]"
	touch $(MACE_STAMP)

install-mace: $(MACE_STAMP)

# the MACE tests, run in the MACE venv (the main suite skips them)
test-mace: $(MACE_STAMP)
	$(MACE_VENV)/bin/python -m pytest -q tests/test_atomistic_mace.py \
		tests/test_case_silicon.py::test_tiny_run_with_mace

test: test-mace

clean:
	rm -rf $(VENV) $(MACE_VENV) demo-output .pytest_cache .ruff_cache
