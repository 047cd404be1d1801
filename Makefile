# Set-up and everyday commands. Works on a machine with nothing but Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: venv install test demo bench bench-harness bench-quick clean system-deps libfuse

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall when the project's metadata changes.
$(STAMP): $(PY) pyproject.toml
	@# sagemaker-training (the test extra) ships as source with a small C extension: it needs a compiler.
	@command -v cc >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		echo "installing Debian's gcc to build sagemaker-training" && \
		(apt-get install -y -qq gcc >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq gcc >/dev/null 2>&1)); } || \
		echo "no C compiler: installing sagemaker-training (the test extra) will fail; install gcc"
	@# The torch extra's CPU build, pinned, and first: a bare "torch" would fetch a multi-GB CUDA build,
	@# and the test extra's torchdata asks for torch, which pip would resolve so if none were installed.
	@$(PY) -c 'import torch' 2>/dev/null || $(PIP) install --quiet torch==2.13.0 || \
		echo "torch==2.13.0 could not be installed: the PyTorch adapter's tests will be skipped"
	$(PIP) install --quiet -e '.[test]'
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
	@$(MAKE) --no-print-directory libfuse

# libfuse 3.17 or newer lets the FastFile mount bypass the page cache and still serve mmap
# (FUSE_DIRECT_IO_ALLOW_MMAP). Where the system's is older (Debian 12 ships 3.14), build the library
# from Debian trixie's own source package (patches applied) into $(LIBFUSE); `channels mount` looks
# there first. apt reads trixie's deb-src index from a private list in a temporary directory: the
# machine's apt sources are left as they are. Any failure is soft: the mount uses the system's libfuse.
LIBFUSE     := $(VENV)/libfuse
LIBFUSE_LIB := $(LIBFUSE)/lib/libfuse3.so.4
LIBFUSE_SRC ?= deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
LIBFUSE_BUILD_DEPS := dpkg-dev gcc libc6-dev meson ninja-build pkg-config

libfuse: $(PY)
	@if [ -e $(LIBFUSE_LIB) ]; then :; \
	elif /sbin/ldconfig -p 2>/dev/null | grep -q 'libfuse3\.so\.4 '; then :; \
	elif ! command -v apt-get >/dev/null 2>&1 || [ "$$(id -u)" != 0 ]; then \
		echo "libfuse 3.17 not built (needs root and apt-get): the FastFile mount uses the system's libfuse"; \
	else \
		echo "building libfuse 3.17 from Debian trixie's fuse3 source package into $(LIBFUSE)"; \
		tmp=$$(mktemp -d) && \
		apt="apt-get -qq -o Dir::Etc::SourceList=$$tmp/sources.list -o Dir::Etc::SourceParts=/nonexistent \
		     -o Dir::State::Lists=$$tmp/lists -o Dir::Cache=$$tmp/cache -o APT::Sandbox::User=root" && \
		( missing=$$(for p in $(LIBFUSE_BUILD_DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		             grep -q '^install ok installed' || echo $$p; done); \
		  { [ -z "$$missing" ] || apt-get install -y -qq $$missing || \
		    { apt-get update -qq && apt-get install -y -qq $$missing; }; } && \
		  mkdir -p $$tmp/lists/partial $$tmp/cache/archives/partial && \
		  echo '$(LIBFUSE_SRC)' > $$tmp/sources.list && \
		  $$apt update && \
		  (cd $$tmp && $$apt source fuse3) && \
		  meson setup $$tmp/build $$tmp/fuse3-*/ -Dexamples=false -Dtests=false -Dutils=false \
		        --buildtype=release --prefix=$(abspath $(LIBFUSE)) --libdir=lib && \
		  ninja -C $$tmp/build install ) >$$tmp/log 2>&1 || \
		{ tail -n 20 $$tmp/log; rm -rf $(LIBFUSE); \
		  echo "libfuse 3.17 could not be built (output above): the FastFile mount uses the system's libfuse"; }; \
		rm -rf $$tmp; \
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
