# The two commands of the README. Both build the environment first if it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
export MMLK_VENV := $(abspath $(VENV))

.PHONY: env demo test bench

env:
	bash scripts/setup_env.sh

demo: env
	bash scripts/demo.sh

test: env
	$(PY) -m pytest tests -n 2 -q -p no:cacheprovider

bench: env
	$(PY) benchmarks/run_all.py --update-readme
