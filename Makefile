# Every target sets up what it needs: a fresh clone only needs `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# bench/ is optional in a checkout (it lands separately); lint only what exists.
LINT_DIRS := somas_action somas tests $(wildcard bench)

.PHONY: demo test lint typecheck bench clean tools

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# The runbook's own shell procedures are tested too, so jq and git must be present.
tools:
	@command -v git >/dev/null || { echo "git is required"; exit 1; }
	@command -v jq >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq jq >/dev/null; \
	  else echo "jq is required for the runbook tests: install it (apt-get install jq)"; exit 1; fi; }

demo: $(STAMP)
	$(BIN)/somas demo $(if $(DIR),--dir $(DIR))

test: $(STAMP) tools
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
