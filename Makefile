# coedit — two commands on a fresh machine:
#   make test   create/update .venv, install, run the whole suite
#   make run    create/update .venv, install, run the main job: `coedit fix` on an example with the shipped model
#   make vsix   the VS Code extension as editors/vscode/coedit.vsix (needs node >= 20)
# Heavy dependencies (torch, llama-cpp-python) are installed only by the targets that need them;
# pip's cache is reused, so llama-cpp-python's source build happens once per machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEV    := $(VENV)/.installed-dev
ALL    := $(VENV)/.installed-all
LLAMA_CPP_PYTHON := 0.3.36
CONVERTER := .cache/llama.cpp/convert_lora_to_gguf.py
VSCODE := editors/vscode
NODE_MODULES := $(VSCODE)/node_modules/.package-lock.json

.PHONY: test run sandbox bench converter clean vscode-test vsix merged

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# Everything: torch first and alone (an unpinned torch pulls CUDA builds), then the extras.
# llama-cpp-python builds from source once per machine (minutes); pip's cache keeps the wheel.
$(ALL): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(BIN)/python -m pip install -q -e '.[dev,train,server]'
	touch $(DEV) $@

# llama.cpp's HF->GGUF converter, from the source distribution of the llama-cpp-python we run
converter: $(CONVERTER)
$(CONVERTER): | $(BIN)/python
	mkdir -p .cache/sdist
	$(BIN)/python -m pip download -q --no-deps --no-binary :all: llama-cpp-python==$(LLAMA_CPP_PYTHON) -d .cache/sdist
	rm -rf .cache/llama.cpp .cache/unpack && mkdir -p .cache/unpack
	tar -xzf .cache/sdist/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz -C .cache/unpack \
	  --wildcards '*/vendor/llama.cpp/convert_hf_to_gguf.py' '*/vendor/llama.cpp/convert_lora_to_gguf.py' \
	  '*/vendor/llama.cpp/conversion/*' '*/vendor/llama.cpp/gguf-py/*'
	mv .cache/unpack/llama_cpp_python-$(LLAMA_CPP_PYTHON)/vendor/llama.cpp .cache/llama.cpp && rm -rf .cache/unpack

# The sandbox wants bubblewrap; without it, runs fall back (visibly) to plain rlimits.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap (sandbox isolation)"; \
	    (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1)) || \
	    echo "warning: could not install bubblewrap; the sandbox will run without namespace isolation"; \
	  else \
	    echo "warning: bubblewrap missing; install it for full sandbox isolation: sudo apt-get install bubblewrap"; \
	  fi; }

# The VS Code extension's unit tests (node's test runner, a stubbed `vscode`) run first: quick,
# and their failure stops the suite with the output on screen.
test: $(ALL) sandbox $(CONVERTER) vscode-test
	$(BIN)/python -m pytest -q

# The extension's npm packages, exactly as package-lock.json has them (npm ci: needs node >= 20)
$(NODE_MODULES): $(VSCODE)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "node >= 20 and npm are needed for editors/vscode (e.g. apt-get install nodejs npm)"; exit 1; }
	cd $(VSCODE) && npm ci --no-audit --no-fund

vscode-test: $(NODE_MODULES)
	cd $(VSCODE) && npm test

# editors/vscode/coedit.vsix: type-checked with tsc, bundled with esbuild, packaged with vsce
vsix: $(NODE_MODULES)
	cd $(VSCODE) && npm run vsix
	@echo "install with: code --install-extension $(VSCODE)/coedit.vsix"

# The shipped model's LoRA adapter merged into its base GGUF, in ~/.cache/coedit (once: ~5 s; then a
# hash check). Fix would merge it on first use anyway; this keeps that out of the first Fix's time.
merged: $(ALL)
	$(BIN)/python -m server.backends.lora_merge models/default/coedit.gguf

# `coedit fix` with the shipped model on a copy of examples/shop (a bug in cart.py, its pytest tests)
run: $(ALL) sandbox merged
	@work=$$(mktemp -d) && cp -r examples/shop "$$work/" && echo "coedit fix $$work/shop/cart.py" && \
	  $(BIN)/coedit fix "$$work/shop/cart.py"; status=$$?; rm -rf "$$work"; exit $$status

bench: $(DEV) sandbox
	$(BIN)/python bench/tool_step.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
	rm -rf $(VSCODE)/node_modules $(VSCODE)/out $(VSCODE)/dist $(VSCODE)/coedit.vsix
