# The two commands a newcomer needs: `make demo` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test serve bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# setup.py compiles the C extensions (the HJ 212 codec's hot path, the compiled and the native matching cores) into
# the source tree; a change to any of them reinstalls.
COMPILED := setup.py src/ingot/monitoring/hj212/_fastpath.c src/ingot/market/engine/_corefast.c \
            src/ingot/market/engine/_nativecore.c

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt $(COMPILED)
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml constraints.txt $(COMPILED)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/ingot demo --host $(HOST) --port $(PORT)

serve: $(VENV)/.installed
	$(BIN)/ingot serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache build src/ingot/monitoring/hj212/_fastpath.*.so src/ingot/market/engine/_corefast.*.so
