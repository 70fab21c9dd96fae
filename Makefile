# Every target sets up what it needs: a fresh clone only needs `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
LINT_DIRS := somas_action somas tests bench

.PHONY: demo test lint typecheck bench faults clean tools check-workflows

# Lint what exists: bench/ may be absent in a partial checkout.

# Test-only npm data: GitHub's REST OpenAPI description (contract checks of every request the
# fake GitHub server sees) and real webhook payloads. Pinned by package-lock.json.
NODE_STAMP := node_modules/.installed-$(shell cat package-lock.json | cksum | cut -d' ' -f1)

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

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 20) is required for the GitHub contract tests"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.installed-* && touch $@

demo: $(STAMP)
	$(BIN)/somas demo $(if $(DIR),--dir $(DIR))

WORKFLOWS := .github/workflows/*.yml somas_action/templates/somas.yml

test: $(STAMP) $(NODE_STAMP) tools check-workflows
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

# GitHub's own schemas for workflows, the action and issue forms; zizmor for security.
check-workflows: $(STAMP)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-issue-forms .github/ISSUE_TEMPLATE/somas-project.yml
	$(BIN)/zizmor --offline --quiet --config .github/zizmor.yml --min-severity medium \
	  .github/workflows action.yml somas_action/templates/somas.yml

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run.py

# The fault experiments at full size (SIGKILL at every durable operation and at random times,
# truncation, corruption, a full disk, clock steps, signal pairs) with their figures; `make
# test` runs a bounded form (tests/faults/). FAULTS_ARGS="--code DIR" measures another checkout.
faults: $(STAMP) tools
	$(BIN)/python bench/faults.py $(FAULTS_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info node_modules
