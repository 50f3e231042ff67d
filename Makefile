# Two commands do all their own setup: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-floors lint format wheel-check bench docs pictures clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.demo: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[demo]"
	touch $@

$(VENV)/.docs: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

$(VENV)/.test: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.lint: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[lint]"
	touch $@

$(VENV)/.release: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[release]"
	touch $@

demo: $(VENV)/.demo
	$(VENV)/bin/gradkit train --out runs/train
	$(VENV)/bin/gradkit train --train-size 100 --epochs 60 --lr 5e-3 --augment none --sweep weight_decay=0,3,0 --sweep l2=0,0,0.03 --out runs/overfitting
	$(PY) examples/overfitting_polynomial.py runs/overfitting_polynomial.png
	$(VENV)/bin/gradkit race --out runs/race --html runs/race/race.html
	@echo "pictures: runs/train/curves.png (the recipe: train vs validation loss and accuracy),"
	@echo "          runs/overfitting/curves.png (the gap with and without weight decay / L2),"
	@echo "          runs/overfitting_polynomial.png (the lecture's curve-fitting picture), runs/race/*.png,"
	@echo "          runs/race/race.html (the race, interactive: open it in a browser)"

test: $(VENV)/.test
	$(PY) -m pytest -n 2 -q

# The core tests in a second venv holding the declared floor versions (.ci/floors.txt); the peers (optax,
# chex) are whatever versions pip finds compatible with those floors.
FLOORS_VENV ?= .venv-floors
CORE_TESTS := tests/test_optimizers.py tests/test_optimizers_optax.py tests/test_schedules.py tests/test_losses.py \
	tests/test_regularizers.py tests/test_init.py tests/test_gradcheck.py

$(FLOORS_VENV)/.floors: pyproject.toml .ci/floors.txt
	$(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/python -m pip install --quiet -c .ci/floors.txt -e . optax chex pytest hypothesis
	touch $@

test-floors: $(FLOORS_VENV)/.floors
	$(FLOORS_VENV)/bin/python -m pytest -q -p no:cacheprovider $(CORE_TESTS)

# ruff's rule set and its reasons are in pyproject.toml; `make format` applies the formatter and safe fixes.
# pyright checks the package and tests/typing/user_script.py against the optional dependencies' own types
# (matplotlib, scikit-learn, optax, rich): the test extra installs them, and the lint tools with them.
lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright --pythonpath $(PY)

format: $(VENV)/.lint
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Build the sdist and wheel, check their metadata, smoke-test the wheel in a clean venv outside the tree.
wheel-check: $(VENV)/.release
	PY=$(PY) bash .ci/wheel-check

# The user guides (docs/*.md) and the API reference from the docstrings, into site/; warnings are errors.
docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Regenerate the pictures committed under docs/ (the page's screenshot needs chromium).
pictures: $(VENV)/.demo
	GRADKIT=$(VENV)/bin/gradkit PY=$(PY) bash docs/_build/pictures.sh

# Same as `gradkit bench`: BENCH_ARGS="--quick" for the smoke run, "--scale 0.5" to size the GPT-2 case; torch peers
# run if torch is installed. Results go to runs/bench/ (ignored by git).
bench: $(VENV)/.test
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(FLOORS_VENV) build site src/*.egg-info .pytest_cache
