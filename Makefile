# adaptcli: `make demo` runs the main job on synthetic data; `make test` runs the test suite (newest
# releases of everything); `make test-lowest` runs it on the lowest ones pyproject.toml allows
# (constraints-lowest.txt, in .venv-lowest); `make gpu-check` runs benchmarks/gpu_check.sh.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed

.PHONY: install install-lowest demo demo-quick test test-lowest test-fast bench gpu-check gpu-wheels clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/adaptcli demo --out demo-out

demo-quick: $(STAMP)
	$(BIN)/adaptcli demo --out demo-out --quick

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

$(LOWEST_STAMP): pyproject.toml constraints-lowest.txt
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install -c constraints-lowest.txt -e ".[dev]"
	touch $(LOWEST_STAMP)

install-lowest: $(LOWEST_STAMP)

test-lowest: $(LOWEST_STAMP)
	$(LOWEST)/bin/python -m pytest -n 2 --dist loadfile -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/loader.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/inference.py

gpu-check:
	bash benchmarks/gpu_check.sh

gpu-wheels:
	bash benchmarks/gpu_check.sh --download-wheels

clean:
	rm -rf $(VENV) $(LOWEST) demo-out .pytest_cache
