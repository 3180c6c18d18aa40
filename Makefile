# Two commands on a fresh machine:  `make book`  and  `make test`  (see README.md).
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
EXTRAS  := book,test,teach
# `full` reproduces the paper's settings; `quick` is the CI/CPU profile.
PROFILE ?= full
PYTEST_ARGS ?=
STAMP   := $(VENV)/.installed

MATHJAX := _extra/_static/mathjax/tex-mml-chtml.js

# UCI arrays for offline runs: ../shared/data when it exists (this machine, CI) and MOLLI_DATA
# is unset; elsewhere (Colab) molli_utils downloads the original files and rebuilds them.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/uci),)
export MOLLI_DATA ?= $(SHARED_DATA)
endif

.PHONY: install book test test-fast format test-arith bench check-site clean student gpu-check gpu-check-wheels gpu-check-offline

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m pip check
	touch $@

# MathJax is served from the site itself (no CDN), so the book renders math offline too.
$(MATHJAX):
	rm -rf _build/mathjax-npm && mkdir -p _build/mathjax-npm _extra/_static
	npm install --silent --no-audit --no-fund --prefix _build/mathjax-npm mathjax@3
	rm -rf _extra/_static/mathjax && cp -r _build/mathjax-npm/node_modules/mathjax/es5 _extra/_static/mathjax

# The execution cache keys on the notebooks' code only, not on MOLLI_PROFILE: start it afresh
# when the profile changes, so a full build never reuses quick-profile outputs (or vice versa).
book: install $(MATHJAX)
	@if [ "$$(cat _build/.profile 2>/dev/null)" != "$(PROFILE)" ]; then rm -rf _build/.jupyter_cache _build/jupyter_execute; fi
	@mkdir -p _build && echo "$(PROFILE)" > _build/.profile
	MOLLI_PROFILE=$(PROFILE) MOLLI_PROGRESS=0 $(VENV)/bin/jupyter-book build . --all -W -n --keep-going
	@echo "Book written to _build/html/index.html"

# pytest exits 5 when it collects no test: say so plainly instead of failing silently.
test: install
	MOLLI_PROFILE=quick MOLLI_PROGRESS=0 $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5): check tests/ and pyproject's testpaths" >&2; fi; \
	exit $$rc

# The one formatter (ruff format, settings in pyproject.toml); make test fails on unformatted code.
format: install
	$(VENV)/bin/ruff format .

# The fast tier, for a contributor's edit-test loop: everything but the notebook executions and the re-runs of
# stored results (make test runs all of them; CI runs make test).
test-fast: install
	MOLLI_PROFILE=quick MOLLI_PROGRESS=0 $(PY) -m pytest -m "not notebook and not reproduction and not slow" -q $(PYTEST_ARGS)

# The stored-result checks (pytest -m reproduction: chapter 3's and 4's live runs and the other re-runs of stored
# rows) again under another float arithmetic than this machine's own, as on a reader's CPU of another type:
# tools/other_arith.py picks MKL's AVX2 kernels, else ATen's and MKL's portable ones, and says which.
test-arith: install
	@ARITH="$$($(PY) -m tools.other_arith)" && echo "make test-arith: $$ARITH" && \
	env $$ARITH MOLLI_PROFILE=quick MOLLI_PROGRESS=0 $(PY) -m pytest -m reproduction $(PYTEST_ARGS)

# The prepared GPU check (tools/gpu_check.py). A GPU machine with network: `make gpu-check` (builds .venv first).
# The lent GPU machines have no network: `make gpu-check-wheels` here, carry .whl/gpu-check, `make gpu-check-offline` there.
GPU_CHECK_ARGS ?=
GPU_WHEELS := pythae pytorch-fid pydantic pydantic-core annotated-types typing-inspection typing-extensions

gpu-check: install
	PYTHONUNBUFFERED=1 $(PY) -m tools.gpu_check $(GPU_CHECK_ARGS)

gpu-check-wheels: install
	rm -rf .whl/gpu-check && mkdir -p .whl/gpu-check
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl/gpu-check \
	  $$($(PY) -c 'import importlib.metadata as m, sys; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $(GPU_WHEELS))
	$(PY) -m pip wheel --quiet --no-deps -w .whl/gpu-check normflows==$$($(PY) -c 'import importlib.metadata as m; print(m.version("normflows"))')

gpu-check-offline:
	python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/gpu-check/*.whl
	PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 -m tools.gpu_check $(GPU_CHECK_ARGS)

# Open every page of the built book in headless Chromium (installed from Debian when missing).
check-site: book
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "error: Chromium is missing: install it (Debian: sudo apt-get install chromium)" >&2; exit 1; }
	$(PY) tools/check_site.py _build/html

bench: install
	$(PY) -m benchmarks.bench_overhead --out molli_utils/results/overhead.csv
	$(PY) -m benchmarks.bench_toy2d
	$(PY) -m benchmarks.bench_uci
	$(PY) -m benchmarks.bench_fid
	$(PY) -m benchmarks.bench_vae_flops
	$(PY) -m benchmarks.bench_vae_steps

clean:
	rm -rf _build .pytest_cache

# Student versions of the graded assignments (solutions stripped, outputs removed); see book/instructors.md.
student: install
	$(PY) tools/make_student.py book/assignments _build/student
