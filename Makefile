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
	$(VENV)/bin/gradkit train --out runs/train
	$(VENV)/bin/gradkit train --train-size 100 --epochs 60 --lr 5e-3 --augment none --sweep weight_decay=0,3,0 --sweep l2=0,0,0.03 --out runs/overfitting
	$(PY) examples/overfitting_polynomial.py runs/overfitting_polynomial.png
	$(VENV)/bin/gradkit race --out runs/race
	@echo "pictures: runs/train/curves.png (the recipe: train vs validation loss and accuracy),"
	@echo "          runs/overfitting/curves.png (the gap with and without weight decay / L2),"
	@echo "          runs/overfitting_polynomial.png (the lecture's curve-fitting picture), runs/race/*.png"

test: $(VENV)/.test
	$(PY) -m pytest -n 2 -q

# Same as `gradkit bench`: BENCH_ARGS="--quick" for the smoke run, "--scale 0.5" to size the GPT-2 case; torch peers
# run if torch is installed. Results go to runs/bench/ (ignored by git).
bench: $(VENV)/.test
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
