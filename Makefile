# The two commands of the README. Both build the environment first if it is missing.
# `make test` runs the whole suite on the current stack, then the model tests on the legacy
# stack (README "Install": the tested matrix; tests/conftest.py: what the legacy run selects).
VENV ?= .venv
LEGACY_VENV ?= .venv-legacy
PY := $(VENV)/bin/python
LEGACY_PY := $(LEGACY_VENV)/bin/python
PYTEST := -m pytest tests -n 2 -q -p no:cacheprovider

.PHONY: env env-legacy demo test lint test-current test-legacy bench

env:
	MMLK_VENV=$(abspath $(VENV)) MMLK_STACK=current bash scripts/setup_env.sh

env-legacy:
	MMLK_VENV=$(abspath $(LEGACY_VENV)) MMLK_STACK=legacy bash scripts/setup_env.sh

demo: env
	MMLK_VENV=$(abspath $(VENV)) bash scripts/demo.sh

test: lint test-current test-legacy

# pyflakes + pycodestyle at 100 columns (ruff.toml); the same check as .pre-commit-config.yaml.
lint: env
	$(PY) -m ruff check .

test-current: env
	@echo '=== current stack: Python 3.11, torch 2.14.1 (whole suite) ==='
	$(PY) $(PYTEST)

test-legacy: env-legacy
	@echo '=== legacy stack: Python 3.10, torch 2.1.2 (model, tool and distributed tests) ==='
	$(LEGACY_PY) $(PYTEST) --stack=legacy

bench: env
	MMLK_VENV=$(abspath $(VENV)) $(PY) benchmarks/run_all.py --update-readme
