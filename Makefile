# The README's two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow bench clean references-4nm model particle-model

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall when the pins or the package metadata change.
$(STAMP): $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/nanoseg demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_synth.py
	$(BIN)/python benchmarks/bench_train_step.py
	$(BIN)/python benchmarks/bench_predict.py

clean:
	rm -rf $(VENV) build src/*.egg-info

# The four labelled reference micrographs at the shipped model's pixel size (4 nm/px).
references-4nm: $(STAMP)
	$(BIN)/nanoseg import references/boiko2020 --out runs/references-4nm --crop-bottom auto \
		--resample-nm-per-px 4 --overwrite

# The model nanoseg ships (src/nanoseg/pretrained/): the recipe in nanoseg/pretrained/recipe.py,
# settings in experiments/default-model/. About 15-25 minutes on a 2-core CPU.
model: $(STAMP)
	$(BIN)/python -m nanoseg.pretrained.recipe --run runs/default-model

# The particle model of the chains-by-CNN experiment (benchmarks/particle_model.py, settings in
# experiments/particle-model/): unet-small taught synthetic particle maps at 1.8-2.2 nm/px, its
# threshold chosen on synthetic validation images. Then:
#   python benchmarks/ring_finder_baseline.py --particle-model runs/particle-model/particles.pt --perturb
particle-model: $(STAMP)
	$(BIN)/python benchmarks/particle_model.py --run runs/particle-model
