# zipldump: the two entry points are `make demo` and `make test`.
# Both install what they need (Debian packages, a venv) and are safe to re-run.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APT_PACKAGES := python3 python3-venv python3-dev gcc pkg-config libparted-dev \
                e2fsprogs qemu-system-misc cpio binutils gdb-multiarch
PYTEST_ARGS ?=

.PHONY: demo test deps apt venv bench clean

demo: deps
	$(BIN)/zipldump demo

test: deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache disk-images/*.img
