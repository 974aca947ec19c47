# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench docs lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[all]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install -e ".[all,bench]"
	$(PY) -m pip install --no-deps qpth   # qpth pins numpy<2 but runs on numpy 2
	touch $(VENV)/.bench

bench: $(VENV)/.bench
	@for f in benchmarks/bench_*.py; do [ -e "$$f" ] || continue; $(PY) "$$f" || exit 1; done

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check diffdsl backends tests examples benchmarks

clean:
	rm -rf $(VENV) build site examples/out *.egg-info
