# Set-up and everyday commands. Works on a machine with nothing but Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: venv install test demo bench bench-harness bench-quick clean system-deps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall when the project's metadata changes.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet -e '.[test]'
	@# The torch extra's CPU build, pinned: a bare "torch" would fetch a multi-GB CUDA build.
	@$(PY) -c 'import torch' 2>/dev/null || $(PIP) install --quiet torch==2.13.0 || \
		echo "torch==2.13.0 could not be installed: the PyTorch adapter's tests will be skipped"
	@# s3torchconnector (a bench peer) requires torch: added without its deps once torch is there, so
	@# pip never resolves a torch of its own (its client, s3torchconnectorclient, comes with the test extra).
	@$(PY) -c 'import torch' 2>/dev/null && $(PIP) install --quiet --no-deps 's3torchconnector>=1.5,<2' || true
	touch $(STAMP)

install: $(STAMP) system-deps

# Debian packages the FUSE tests need, installed only where missing.
system-deps:
	@if [ ! -x /usr/bin/fusermount3 ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's fuse3 for the FUSE mount"; \
		(apt-get install -y -qq fuse3 libfuse3-dev >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq fuse3 libfuse3-dev >/dev/null 2>&1)) || \
		echo "fuse3 could not be installed: FUSE tests will be skipped with that reason"; \
	fi

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/channels demo

# Every pytest-benchmark suite (planning, framing, transport, modes, proxy); not part of `make test`.
bench: install
	$(PY) -m pytest benchmarks -q --benchmark-only

# The harness: modes against peers, latency profiles, host imbalance; JSON for notebooks/.
bench-harness: install
	$(VENV)/bin/channels bench --json out/bench.json

bench-quick: install
	$(VENV)/bin/channels bench --quick --json out/bench-quick.json

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks build *.egg-info
