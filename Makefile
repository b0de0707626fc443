# `make demo` and `make test` each set up .venv by themselves; re-running is cheap.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all lint check fmt bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m spacelang check spaces/*.space examples/*.space
	$(PY) -m spacelang count spaces/autoformer-tiny.space
	@if [ -f examples/demo.sh ]; then bash examples/demo.sh; fi

# CI's set: everything but the tests marked slow (long end-to-end runs); `make test-all` runs those too
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -x -m "not slow" --durations=10

test-all: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q --durations=20

lint: $(STAMP)
	$(PY) -m ruff check .

check: $(STAMP)
	$(PY) -m spacelang check spaces/*.space examples/*.space
	$(PY) -m spacelang fmt --check spaces/*.space examples/*.space

bench: $(STAMP)
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs build *.egg-info
