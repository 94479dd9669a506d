# coedit — two commands on a fresh machine:
#   make test   create/update .venv, install, run the whole suite
#   make run    create/update .venv, install, run the main job (today: a demo episode of the dsl tool)
# Heavy dependencies (torch, llama-cpp-python) are installed only by the targets that need them;
# pip's cache is reused, so llama-cpp-python's source build happens once per machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEV    := $(VENV)/.installed-dev

.PHONY: test run sandbox bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

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

test: $(DEV) sandbox
	$(BIN)/python -m pytest -q

run: $(DEV) sandbox
	$(BIN)/python -m dsl demo

bench: $(DEV) sandbox
	$(BIN)/python bench/tool_step.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
