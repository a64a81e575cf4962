# The README's two commands: `make run` and `make test`. Each creates or updates .venv first; a second run with
# nothing changed reinstalls nothing (the stamp files are newer than pyproject.toml and constraints.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: run test test-fast lint bench bench-gpu default-model clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/vae-explorer

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

test-fast: lint   # everything but the tests marked slow (real UMAP / t-SNE, trainings, subprocess runs)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow"

bench: $(VENV)/.installed
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# The CUDA training core measured on this machine's GPU (~7 min; bench/gpu_suite.py): the table is printed and saved
# with its JSON in build/gpu-suite.
bench-gpu: $(VENV)/.installed
	$(BIN)/python bench/gpu_suite.py --device cuda --out build/gpu-suite

# Rebuild the bundled models in resources/ (documented in README). The bundled VAE keeps only the model's weights,
# in float16 (about 3 MB instead of 18 MB with the optimizer state; its eval numbers agree to 4 digits).
BUNDLE = $(BIN)/python -c "import sys; from core.training.checkpoint import load_model, save_checkpoint; \
	m = load_model(sys.argv[1]); save_checkpoint(sys.argv[2], model=m.model.half(), config=m.config, meta=m.meta, \
	train_state={'step': m.step, 'epoch': m.epoch}, metrics=m.metrics)"

default-model: $(VENV)/.installed
	$(BIN)/python -m core.cli train --preset digits --seed 0 --out build/default-vae --quiet
	$(BUNDLE) build/default-vae/checkpoints/best.safetensors resources/digits-vae.safetensors
	$(BIN)/python -m core.cli eval resources/digits-vae.safetensors --quiet
	$(BIN)/python -m core.cli train --preset digits-diffusion --seed 0 --out build/default-diffusion --quiet
	$(BUNDLE) build/default-diffusion/checkpoints/best.safetensors resources/digits-diffusion.safetensors

clean:
	rm -rf $(VENV) build .cache .pytest_cache .ruff_cache
