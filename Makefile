# Two entry points: `make demo` and `make test`. Both build .venv from the pinned requirements when needed.
# `make test PYTHON=python3.12` builds and tests a second environment (.venv-python3.12) beside the default .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(if $(filter command line environment,$(origin PYTHON)),.venv-$(notdir $(PYTHON)),.venv)
BIN := $(VENV)/bin
DATA_ROOT ?= ../shared/data
# The suite runs on the CPU unless asked otherwise (MCULORA_DEVICE=cuda make test), so that a GPU runner cannot
# change it; the CPU/GPU parity tests use CUDA whenever it is there.
MCULORA_DEVICE ?= cpu
export MCULORA_DEVICE

.PHONY: demo test bench browser checkpoint space lint clean-venv

# pyenv's shims answer only for the selected versions; let them find any installed one (e.g. PYTHON=python3.12).
$(BIN)/python:
	interpreter=$$($(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null \
		|| PYENV_VERSION=$$(pyenv versions --bare 2>/dev/null | paste -sd: -) $(PYTHON) -c 'import sys; print(sys.executable)') \
		&& "$$interpreter" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# mediapipe pins the GUI build of OpenCV, which needs the system's libGL.so.1 (a Space gets it from packages.txt). Here
# the same version's headless build takes its place after every install, so a fresh machine needs no system package.
OPENCV_HEADLESS := opencv-contrib-python-headless==4.11.0.86
HEADLESS_OPENCV = $(BIN)/python -m pip uninstall --quiet --yes opencv-contrib-python \
	&& $(BIN)/python -m pip install --quiet --no-deps --force-reinstall $(OPENCV_HEADLESS)

$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	$(HEADLESS_OPENCV)
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/python -m pip install -r requirements-dev.txt
	$(HEADLESS_OPENCV)
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python app.py

# The browser tests drive Debian's Chromium (no browser download); install it when it is missing and we may.
browser:
	@if ! command -v chromium >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
				|| echo "could not install chromium: the browser tests will be skipped"; \
		else \
			echo "chromium is not installed (needs root for apt-get): the browser tests will be skipped"; \
		fi; \
	fi

test: $(VENV)/.installed-dev browser
	MCULORA_DATA_ROOT=$(DATA_ROOT) $(BIN)/python -m pytest

# The benchmark suite (medians and side-by-side ratios): benchmarks/results.json and benchmarks/results.md.
bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/suite.py

# Re-creates checkpoints/default from the real data in $(DATA_ROOT) (features cached in runs/default).
checkpoint: $(VENV)/.installed
	$(BIN)/python -m mculora.recipes.default --data-root $(DATA_ROOT)

# A self-contained Hugging Face Space folder in build/space, validated; prints how to push it.
space: $(VENV)/.installed
	$(BIN)/python -m mculora.hosting.space --out build/space

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check mculora tests app.py
	$(BIN)/ruff format --check mculora tests app.py

clean-venv:
	rm -rf $(VENV)
