# The two commands a newcomer needs (as root, on Debian 12): `make demo` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
BIN      = $(VENV)/bin
export SAFEAPPLY_SANDBOX_PREFIX ?= sat

.PHONY: setup system-deps demo test lint typecheck unit bench clean-sandboxes

$(BIN)/.installed: pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements-lock.txt -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

system-deps:
	scripts/install-system-deps.sh

demo: setup system-deps
	SAFEAPPLY_SANDBOX_PREFIX=demo scripts/demo.sh

lint: setup
	$(BIN)/ruff check safeapply tests bench

typecheck: setup
	$(BIN)/mypy safeapply

test: setup system-deps lint typecheck
	$(BIN)/safeapply sandbox down --all
	$(BIN)/pytest -q
	$(BIN)/safeapply sandbox leftovers

bench: setup system-deps
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-sandboxes: setup
	$(BIN)/safeapply sandbox down --all
