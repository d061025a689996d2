# Two entry points: `make demo` and `make test`. Both build .venv from the pinned requirements when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DATA_ROOT ?= ../shared/data

.PHONY: demo test checkpoint lint clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python app.py

test: $(VENV)/.installed-dev
	MCULORA_DATA_ROOT=$(DATA_ROOT) $(BIN)/python -m pytest

# Re-creates checkpoints/default from the real data in $(DATA_ROOT) (features cached in runs/default).
checkpoint: $(VENV)/.installed
	$(BIN)/python -m mculora.recipes.default --data-root $(DATA_ROOT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check mculora tests app.py
	$(BIN)/ruff format --check mculora tests app.py

clean-venv:
	rm -rf $(VENV)
