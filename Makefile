# Two commands do all their own setup: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.demo: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[demo]"
	touch $@

$(VENV)/.test: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.demo
	$(PY) examples/quickstart.py

test: $(VENV)/.test
	$(PY) -m pytest -n 2 -q

# BENCH_ARGS="--quick" for the smoke run, "--scale 0.5" to size the GPT-2 case; torch peers run if torch is installed.
bench: $(VENV)/.test
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
