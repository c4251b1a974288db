# One-command bootstrap: `make run` opens the app, `make test` runs every check.
# Both create .venv on first use and reinstall when pyproject.toml changes.
PY ?= python3
VENV ?= .venv
CORE_VENV ?= .venv-core
ifeq ($(OS),Windows_NT)
BIN := $(VENV)/Scripts
CORE_BIN := $(CORE_VENV)/Scripts
else
BIN := $(VENV)/bin
CORE_BIN := $(CORE_VENV)/bin
endif

.PHONY: run test test-all test-core-noqt lint bench bundle bundle-check clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[gui,test,dev]'
	@touch $@

# The core's tests in a venv with no PySide6/qasync at all: proves core never needs Qt.
$(CORE_VENV)/.installed: pyproject.toml
	$(PY) -m venv $(CORE_VENV)
	$(CORE_BIN)/python -m pip install -q --upgrade pip
	$(CORE_BIN)/python -m pip install -q -e '.[test]'
	$(CORE_BIN)/python -m pip uninstall -q -y PySide6-Essentials shiboken6 qasync pytest-qt || true
	@touch $@

run: $(VENV)/.installed
	$(BIN)/prismq-desktop

test: lint test-core-noqt test-all

# Everything but the window, then the window's tests in a process of their own (.ci/pytest-gui).
test-all: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest --ignore=tests/gui
	bash .ci/pytest-gui $(BIN)/python

test-core-noqt: $(CORE_VENV)/.installed
	$(CORE_BIN)/python -m pytest tests/core -p no:pytestqt -q

# ruff; mypy over the whole package (strict for the core, see pyproject); import-linter contracts
# (the core never imports Qt, the GUI never imports the CLI, the core's layers).
lint: $(VENV)/.installed
	$(BIN)/ruff check prismq_desktop tests $(wildcard benchmarks examples)
	$(BIN)/mypy prismq_desktop
	$(BIN)/lint-imports

# The double-click app: a one-folder PyInstaller bundle in dist/ (about 20 s here).
bundle: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[bundle]'
	$(BIN)/python -m PyInstaller --noconfirm --distpath dist --workpath build packaging/prismq-desktop.spec

# Build the bundle, start it under Xvfb, run a script through its CLI entry, find it in history.
bundle-check: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[bundle]'
	PY=$(BIN)/python bash packaging/check_bundle.sh

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(CORE_VENV) build dist *.egg-info
