# zipldump: the two entry points are `make demo` and `make test` (the README runs
# them as `./run demo` and `./run test`, which first install make itself when missing).
# Both install what they need (Debian packages, a venv) and are safe to re-run.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APT_PACKAGES := python3 python3-venv python3-dev gcc pkg-config libparted-dev \
                e2fsprogs qemu-system-misc qemu-user-static cpio binutils gdb-multiarch
PYTEST_ARGS ?=

.PHONY: demo test deps apt venv bench crash fuzz clean

demo: deps
	$(BIN)/zipldump demo

# Lint and type gate first: a ruff or mypy error fails `make test` before pytest runs.
test: deps
	$(BIN)/ruff check zipldump tests benchmarks
	$(BIN)/mypy zipldump
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every crash state of every scenario (tests/test_crash_states.py); figures in crash-report.jsonl.
crash: deps
	rm -f crash-report.jsonl
	ZIPLDUMP_CRASH_FULL=1 ZIPLDUMP_CRASH_REPORT=$(CURDIR)/crash-report.jsonl $(BIN)/python -m pytest -q -rxX tests/test_crash_states.py
	cat crash-report.jsonl

# The property fuzzers (tests/test_fuzz.py) with a long budget; `make test` runs 40 examples per reader.
fuzz: deps
	ZIPLDUMP_FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest -q tests/test_fuzz.py

bench: deps
	$(BIN)/python benchmarks/dump_throughput.py

deps: apt venv

# Install missing Debian packages only (no network when all are present).
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.installed

# After apt (python3-venv) even under make -j.  A venv without pip (made before
# python3-venv was installed) is made again rather than reused.
$(VENV)/.installed: pyproject.toml | apt
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache disk-images/*.img
