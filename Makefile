# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv on first use and reuses it after. The install is editable in strict mode
# (a tree of links, which mypy and editors follow), so it is redone when pyproject.toml
# changes or a module is added or removed (the list of modules is kept in $(SOURCES)).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SOURCES := $(VENV)/.sources
MODULES := $(sort $(wildcard src/exportjobs/*.py src/exportjobs/*/*.py addons/*.py \
             simulator/*.py simulator/*/*.py scenarios/*.py scenarios/*.yaml scenarios/*.json))

# `make test-latest`: the proxy's tests once more on the newest Python here (3.12 or 3.13) in
# $(LATEST), where pip picks the newest mitmproxy (12.x; python3 3.11 gets 11.0.2). Skipped,
# with a line saying so, when no such Python runs; PYTHON_LATEST=/path/to/python3.12 picks one.
LATEST ?= .venv-latest
LATEST_TESTS ?= tests/addons tests/cli tests/plugin tests/package
PYTHON_LATEST ?= $(shell for p in python3.12 python3.13; do $$p -c '' 2>/dev/null && { command -v $$p; exit; }; \
                   done; command -v pyenv >/dev/null && ls -d "$$(pyenv root)"/versions/3.1[23]*/bin/python3 2>/dev/null | head -1)

.PHONY: demo test test-latest lint bench serve clean FORCE

$(SOURCES): FORCE
	@mkdir -p $(VENV)
	@echo '$(MODULES)' | cmp -s - $@ || echo '$(MODULES)' > $@

$(STAMP): pyproject.toml $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=strict
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/exportjobs demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-latest:
ifeq ($(strip $(PYTHON_LATEST)),)
	@echo "test-latest: skipped: no python3.12 or python3.13 here (set PYTHON_LATEST=/path/to/python3.12)"
else
	$(MAKE) --no-print-directory VENV=$(LATEST) PYTHON=$(PYTHON_LATEST) $(LATEST)/.installed
	@$(LATEST)/bin/python -c 'import sys, mitmproxy.version as m; print("test-latest: Python", sys.version.split()[0], "mitmproxy", m.VERSION)'
	$(LATEST)/bin/python -m pytest -q $(LATEST_TESTS) $(PYTEST_ARGS)
endif

lint: $(STAMP)
	$(BIN)/ruff check src addons simulator scenarios tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

serve: $(STAMP)
	$(BIN)/exportjobs serve

clean:
	rm -rf $(VENV) $(LATEST) build *.egg-info src/*.egg-info .pytest_cache
