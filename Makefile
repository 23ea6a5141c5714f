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

.PHONY: demo test lint bench serve clean FORCE

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

lint: $(STAMP)
	$(BIN)/ruff check src addons simulator scenarios tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

serve: $(STAMP)
	$(BIN)/exportjobs serve

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
