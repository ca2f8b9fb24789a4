# The README's commands. `make test` and `make demo` build everything they need from nothing.
#
# Heavy third-party packages (torch alone is several GB) live in a virtualenv shared by every
# clone on this machine and keyed by the hash of the pinned requirements, so a change to the pins
# (or a missing install step) builds a new one. The project itself goes into a small per-clone
# .venv that sees the shared one through a .pth file.
PYTHON ?= python3.11
LOCK := requirements/lock.txt
DEPS_HASH := $(shell cat $(LOCK) | sha256sum | cut -c1-16)
DEPS := $(HOME)/.cache/gistrisk/deps-$(DEPS_HASH)
VENV := .venv
BIN := $(VENV)/bin
SITE := lib/$(shell $(PYTHON) -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')/site-packages
DEMO_OUT ?= demo-output
JOBS ?= 2

.PHONY: setup test test-full test-py312 lint demo bench clean

setup: $(VENV)/.installed

# No file prerequisite: the folder name is the hash of the lock file, so it exists only for these
# pins (a fresh clone's newer lock-file mtime must not rebuild a venv other clones are using).
$(DEPS)/.installed:
	rm -rf $(DEPS) && $(PYTHON) -m venv $(DEPS)
	$(DEPS)/bin/pip install -qq --upgrade pip
	$(DEPS)/bin/pip install -qq -r $(LOCK)
	$(DEPS)/bin/pip check
	touch $@

# The clone's venv borrows pip and setuptools (torch requires it) from the shared one through the .pth:
# no pip of its own, no isolated build environment (8.8 -> 1.5 s of a clean clone's `make test`, measured).
$(VENV)/.installed: $(DEPS)/.installed pyproject.toml
	rm -rf $(VENV) && $(PYTHON) -m venv --without-pip $(VENV)
	echo "import site; site.addsitedir('$(DEPS)/$(SITE)')" > $(VENV)/$(SITE)/zz_gistrisk_deps.pth
	$(BIN)/python -m pip install -qq --no-deps --no-build-isolation -e .
	$(BIN)/gistrisk --version
	touch $@

# --dist loadfile: a file's tests (a folder's, where its conftest fits a model or extracts a CT for all of
# them) run on one worker, which builds their shared fixtures once; files with slow tests go first
# (tests/conftest.py). Not in pyproject's addopts: the Python 3.12 Slicer venv (test-py312) has no xdist.
#
# Python's bytecode cache stays on for the tests even where the environment turns it off
# (PYTHONDONTWRITEBYTECODE, set on this project's sandboxes): otherwise every worker and every command a
# test starts compiles the project's modules and rewrites the test files again (collection 12.1 -> 9.9 s
# per worker, measured). The caches go to the clone's __pycache__ folders (git-ignored).
#
# glibc keeps freed memory for reuse instead of unmapping every large block: an array of more than 32 MB
# (lung2's CT as float is 64-128 MB) is otherwise mapped and page-faulted afresh each time, and page faults
# are where this sandbox's slow phases are. Full suite, same clone, back to back: 213 -> 204 s, CPU -7 %,
# the same peak RSS (3.5 GB; 2026-12-02, docs/development.md).
MALLOC_KEEP := MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=17179869184
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(MALLOC_KEEP) $(BIN)/python -m pytest

test: setup
	$(PYTEST) -n $(JOBS) --dist loadfile -q -rs -m "not full" tests

# The replicate studies (signal recovery over six twins) and the check that the package's own
# declaration installs a working CLI (tests/package/check_declared.sh, fresh venvs).
test-full: setup
	$(PYTEST) -n $(JOBS) -q -rs -m full tests
	tests/package/check_declared.sh

# ruff on everything, mypy on the core packages.
lint: setup
	$(BIN)/python -m ruff check core qupath_bridge SlicerGISTRisk tests benchmarks
	$(BIN)/python -m mypy core/gistrisk qupath_bridge

# The Slicer module's tests on Python 3.12 (Slicer 5.10+), in a venv holding exactly the module's
# declared requirements, cached in ~/.cache/gistrisk/py312-<hash>.
test-py312:
	tests/slicer/run_py312.sh

demo: setup
	$(BIN)/gistrisk demo --out $(DEMO_OUT)

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT)
