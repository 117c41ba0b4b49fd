# dppo_robot: two commands on a fresh machine.
#   make demo   set up, then run the main job on the bundled default policy
#   make test   set up, then lint and run the test suite (what CI runs)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
JOBS   ?= 2

.PHONY: setup demo test test-slow lint format bench clean

setup: $(STAMP)

$(STAMP): scripts/setup.sh pyproject.toml requirements/core.txt requirements/ros.txt requirements/dev.txt requirements/ray.txt requirements/constraints.txt
	bash scripts/setup.sh $(VENV)
	@touch $@

demo: setup
	$(PY) -m dppo_robot demo

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test: lint
	$(PY) -m pytest -m "not slow" -n $(JOBS) --durations=15

test-slow: setup
	$(PY) -m pytest -m slow

bench: setup
	$(PY) -m dppo_robot bench inference --out reports/bench/inference.json

clean:
	rm -rf $(VENV) reports/demo .pytest_cache
