# Every target creates .venv and installs the package on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
STEPS := 1 2 4 8 16 32 64 128

.PHONY: test sweep-euler sweep-midpoint sweep-rk4 sweep-dopri5 figure1 report bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

sweep-euler: $(STAMP)
	$(PY) experiments/sweep.py --solver euler --steps $(STEPS) --out results/sweep-euler $(ARGS)

sweep-midpoint: $(STAMP)
	$(PY) experiments/sweep.py --solver midpoint --steps $(STEPS) --out results/sweep-midpoint $(ARGS)

sweep-rk4: $(STAMP)
	$(PY) experiments/sweep.py --solver rk4 --steps $(STEPS) --out results/sweep-rk4 $(ARGS)

sweep-dopri5: $(STAMP)
	$(PY) experiments/sweep.py --solver dopri5 --tols 1e-1 1e-2 1e-3 1e-4 1e-5 1e-6 \
		--test-solvers dopri5 --factors 0.1 1 10 --out results/sweep-dopri5 $(ARGS)

figure1: $(STAMP)
	$(PY) experiments/figure1.py --out results/figure1 $(ARGS)

# make report RUN=results/sweep-euler/runs/euler-n0002
report: $(STAMP)
	$(PY) experiments/ode_report.py $(RUN) $(ARGS)

bench: $(STAMP)
	$(PY) experiments/bench.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pyright

clean:
	rm -rf $(VENV) .pytest_cache
