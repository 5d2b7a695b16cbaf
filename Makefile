# The README's two commands, `make demo` and `make test`, are thin wrappers over these targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.detectlib-installed
# Tests and the demo never reach a model hub: fail fast instead of retrying for a minute.
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: setup demo test bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[demo,lab,dev]'
	touch $(STAMP)

# Build the embedded demo dataset, then execute every numbered notebook in the `demo` profile.
# Executed copies land in build/executed/ (git-ignored); the committed notebooks stay stripped.
demo: $(STAMP)
	$(OFFLINE) DETECTLIB_PROFILE=demo $(BIN)/python -m detectlib.synth
	for nb in notebooks/[0-9]*.ipynb; do \
	  echo "== $$nb"; \
	  $(OFFLINE) DETECTLIB_PROFILE=demo $(BIN)/jupyter nbconvert --to notebook --execute \
	    --ExecutePreprocessor.timeout=3600 --output-dir build/executed "$$nb" || exit 1; \
	done

# Unit tests plus every notebook (lessons and exercises) under nbval, all in the tiny `smoke` profile.
test: $(STAMP)
	$(OFFLINE) DETECTLIB_PROFILE=smoke $(BIN)/python -m pytest tests notebooks \
	  --nbval-lax --nbval-current-env -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check detectlib tests

clean:
	rm -rf build .smoke results
