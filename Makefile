# Two commands for a new user: `make run` and `make test`. Everything else is bootstrapped here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: run test check lint typecheck pytest screenshots icons package deb bench bench-gui clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall only when the dependency list changes.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[registry]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[dev]'
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/contributor-desk --demo

test: check pytest

check: lint typecheck

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

pytest: $(VENV)/.dev-installed
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

screenshots: $(VENV)/.dev-installed
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m app.ui.devtools.screenshots --out docs/screenshots

icons: $(VENV)/.dev-installed
	$(BIN)/python resources/generate_icons.py

# The installable bundle: dist/contributor-desk/ (Linux, Windows), "Contributor Desk.app" (macOS).
# `make package` also prints the bundle's size and its ten largest parts, and writes the
# compressed archive next to it; `make deb` wraps the Linux bundle in a Debian package.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' app/__init__.py)
package: $(VENV)/.dev-installed
	$(BIN)/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller packaging/contributor-desk.spec
	$(BIN)/python packaging/sizes.py dist/contributor-desk \
	  --archive dist/contributor-desk-$(VERSION)-$$($(BIN)/python -c 'import platform,sys; print(sys.platform + "-" + platform.machine().lower())').tar.gz

deb: $(VENV)/.dev-installed
	test -x dist/contributor-desk/contributor-desk || $(MAKE) package
	$(BIN)/python packaging/linux/build_deb.py dist/contributor-desk --out dist

bench-gui: $(VENV)/.dev-installed
	$(BIN)/python bench/gui_startup_bench.py

bench: $(VENV)/.dev-installed
	@for b in bench/*_bench.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
