# Every target sets up what it needs: a fresh clone only needs `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
LINT_DIRS := somas_action somas tests bench

.PHONY: demo test test-fast lint typecheck bench bench-github faults clean tools check-workflows engines wheelhouse

# Lint what exists: bench/ may be absent in a partial checkout.

# Test-only npm data: GitHub's REST OpenAPI description (contract checks of every request the
# fake GitHub server sees) and real webhook payloads. Pinned by package-lock.json.
NODE_STAMP := node_modules/.installed-$(shell cat package-lock.json | cksum | cut -d' ' -f1)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# The runbook's own shell procedures are tested too, so jq and git must be present.
# bubblewrap (bwrap) is the sandbox for repository code; without it the sandbox tests check the
# fallback instead (docs/sandbox.md).
tools:
	@command -v git >/dev/null || { echo "git is required"; exit 1; }
	@command -v jq >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq jq >/dev/null; \
	  else echo "jq is required for the runbook tests: install it (apt-get install jq)"; exit 1; fi; }
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "bwrap is needed for the sandbox tests: install it (apt-get install bubblewrap)"; exit 1; fi; }

# Wheels the Python fixture repository installs offline inside the sandbox (pytest, setuptools).
WHEELHOUSE := .cache/wheelhouse
WHEEL_STAMP := $(WHEELHOUSE)/.downloaded-$(shell cat tests/fixtures/wheelhouse.txt | cksum | cut -d' ' -f1)

$(WHEEL_STAMP): tests/fixtures/wheelhouse.txt $(STAMP)
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
	  --dest $(WHEELHOUSE) -r tests/fixtures/wheelhouse.txt
	@rm -f $(WHEELHOUSE)/.downloaded-* && touch $@

wheelhouse: $(WHEEL_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 20) is required for the GitHub contract tests"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.installed-* && touch $@

# Real engine CLIs for the engine tests, at the versions pinned in tests/engine_pins.json,
# installed by SOMAS's own installer into a folder git ignores (cached: a second run is instant).
ENGINES_DIR := .cache/engines

engines: $(STAMP) tools
	@for engine in $$(jq -r 'keys[]' tests/engine_pins.json); do \
	  $(BIN)/python -m somas_action.providers.engines.install $$engine \
	    "$$(jq -r --arg e $$engine '.[$$e]' tests/engine_pins.json)" --tools-dir $(ENGINES_DIR) \
	    >/dev/null || exit 1; \
	done

demo: $(STAMP)
	$(BIN)/somas demo $(if $(DIR),--dir $(DIR))

WORKFLOWS := .github/workflows/*.yml somas_action/templates/somas.yml

test: $(STAMP) $(NODE_STAMP) $(WHEEL_STAMP) tools check-workflows engines
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

# The fast tier: every test but the e2e, fakes and subprocess ones (tests/tiers.py), under 20 s.
# It still needs the GitHub contract data (the contract's own tests) and git. Its temp folder is
# this checkout's own, emptied at each start: in the shared /tmp/pytest-of-<user> every session
# deletes older sessions' trees, and deleting a full run's (installed venvs, git repositories)
# can take longer than the whole fast tier.
FAST_TMP := $(or $(TMPDIR),/tmp)/somas-test-fast-$(shell echo "$(CURDIR)" | cksum | cut -d' ' -f1)

test-fast: $(STAMP) $(NODE_STAMP) tools
	$(BIN)/python -m pytest --fast --basetemp=$(FAST_TMP)

# GitHub's own schemas for workflows, the action and issue forms; zizmor for security, every
# audit at every severity (pedantic): each allowance is explained in .github/zizmor.yml.
check-workflows: $(STAMP)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-issue-forms .github/ISSUE_TEMPLATE/somas-project.yml
	$(BIN)/zizmor --offline --quiet --persona pedantic --config .github/zizmor.yml \
	  .github/workflows action.yml somas_action/templates/somas.yml

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy

# The run's figures, then issue 14's table as ratios against jq and a naive fold measured in the
# same run (~5 min; RATIOS_ARGS=--quick for ~1 min at a tenth of the size).
bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/ratios.py $(RATIOS_ARGS)

# The fault experiments at full size (SIGKILL at every durable operation and at random times,
# truncation, corruption, a full disk, clock steps, signal pairs) with their figures; `make
# test` runs a bounded form (tests/faults/). FAULTS_ARGS="--code DIR" measures another checkout.
faults: $(STAMP) tools
	$(BIN)/python bench/faults.py $(FAULTS_ARGS)

# Issue 14's GitHub rows: the writes of the 7-stage run (fake GitHub's log) and job start ->
# first stage through action.yml, cold and warm (runner harness; the cold job uses PyPI).
bench-github: $(STAMP) $(NODE_STAMP)
	$(BIN)/python bench/github_requests.py
	$(BIN)/python bench/action_start.py

clean:
	rm -rf $(VENV) build dist *.egg-info node_modules .cache
