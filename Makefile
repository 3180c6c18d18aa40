# Two commands on a fresh machine:  `make book`  and  `make test`  (see README.md).
PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
EXTRAS  := book,test
# `full` reproduces the paper's settings; `quick` is the CI/CPU profile.
PROFILE ?= full
PYTEST_ARGS ?=
STAMP   := $(VENV)/.installed

.PHONY: install book test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m pip check
	touch $@

book: install
	MOLLI_PROFILE=$(PROFILE) $(VENV)/bin/jupyter-book build . --all -W -n --keep-going
	@echo "Book written to _build/html/index.html"

# pytest exits 5 when it collects no test: say so plainly instead of failing silently.
test: install
	MOLLI_PROFILE=quick $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit 5): check tests/ and pyproject's testpaths" >&2; fi; \
	exit $$rc

bench: install
	$(PY) -m benchmarks.bench_overhead

clean:
	rm -rf _build .pytest_cache
