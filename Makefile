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

# The suite runs its test files on TEST_WORKERS workers at once (most of a sandbox test is waiting on a host);
# worker N boots its sandboxes under the prefix $(SAFEAPPLY_SANDBOX_PREFIX)N (tests/conftest.py).
TEST_WORKERS ?= 2
PREFIXES = $(SAFEAPPLY_SANDBOX_PREFIX) $(addprefix $(SAFEAPPLY_SANDBOX_PREFIX),$(shell seq 0 $$(($(TEST_WORKERS) - 1))))

test: setup system-deps lint typecheck
	for p in $(PREFIXES); do SAFEAPPLY_SANDBOX_PREFIX=$$p $(BIN)/safeapply sandbox down --all || exit 1; done
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile
	for p in $(PREFIXES); do SAFEAPPLY_SANDBOX_PREFIX=$$p $(BIN)/safeapply sandbox leftovers || exit 1; done

bench: setup system-deps
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-sandboxes: setup
	$(BIN)/safeapply sandbox down --all
