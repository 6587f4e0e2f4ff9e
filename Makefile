# Everything a fresh machine needs, from a clean clone: `make run` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The plugin packages installed (editable) beside the core and tested by CI.
PLUGINS := plugins/example

.PHONY: install system-packages test run bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml plugins/*/*/pyproject.toml) scripts/system-packages.txt
	@bash scripts/install-system-packages.sh
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "scientist needs Python 3.11 or newer as $(PYTHON); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' $(foreach p,$(PLUGINS),-e $(p))
	touch $@

test: install
	$(BIN)/python -m pytest

run: install
	$(BIN)/scientist baseline example --quick

bench: install
	$(BIN)/python benchmarks/cli_startup.py

clean:
	rm -rf $(VENV) scientist-runs .pytest_cache
