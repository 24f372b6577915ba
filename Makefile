# Every target creates .venv and installs the package on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
STEPS := 1 2 4 8 16 32 64 128

.PHONY: test sweep-euler sweep-midpoint sweep-rk4 sweep-dopri5 figure1 report bench lint clean \
	adapt table1 resnet-ode figure2 figure3 docs docs-serve sweep-fehlberg2 \
	sweep-euler-backsolve sweep-spheres ott2021

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev,docs]'
	touch $(STAMP)

test: $(STAMP) docs
	$(PY) -m pytest -q -n auto

# The docs site (mkdocs-material + mkdocstrings) into site/, strict: a broken link or
# anchor, a missing reference or a public name without a docstring fails the build.
# MathJax is served from the site itself: the npm package, fetched once and checked.
MATHJAX := docs/assets/mathjax/tex-svg.js
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := d4295dc33744836935c1399feece5159577b34c5c8ffb9f1c6324cd82e03a882
export NO_MKDOCS_2_WARNING := 1
$(MATHJAX):
	@command -v npm >/dev/null || { echo "error: make docs needs npm to fetch MathJax $(MATHJAX_VERSION) (or put its es5/tex-svg.js at $@)"; exit 2; }
	@tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null \
		&& tar xzf mathjax-$(MATHJAX_VERSION).tgz package/es5/tex-svg.js) \
		&& echo "$(MATHJAX_SHA256)  $$tmp/package/es5/tex-svg.js" | sha256sum -c --quiet \
		&& mkdir -p $(@D) && cp $$tmp/package/es5/tex-svg.js $@; status=$$?; rm -rf $$tmp; exit $$status

docs: $(STAMP) $(MATHJAX)
	$(VENV)/bin/mkdocs build --strict --quiet

docs-serve: $(STAMP) $(MATHJAX)
	$(VENV)/bin/mkdocs serve --strict

sweep-euler: $(STAMP)
	$(PY) experiments/sweep.py --solver euler --steps $(STEPS) --out results/sweep-euler $(ARGS)

sweep-midpoint: $(STAMP)
	$(PY) experiments/sweep.py --solver midpoint --steps $(STEPS) --out results/sweep-midpoint $(ARGS)

# The paper's library's "rk4" is the 3/8 rule: trained with it, tested with it and with
# classic RK4 (the paper's Fig. 4b).
sweep-rk4: $(STAMP)
	$(PY) experiments/sweep.py --solver rk4_38 --steps $(STEPS) --test-solvers rk4_38 rk4 \
		--out results/sweep-rk4 $(ARGS)

sweep-fehlberg2: $(STAMP)
	$(PY) experiments/sweep.py --solver fehlberg2 --tols 1e-1 1e-2 1e-3 1e-4 1e-5 \
		--test-solvers fehlberg2 dopri5 --factors 0.1 1 10 --out results/sweep-fehlberg2 $(ARGS)

# The Euler sweep trained with the continuous adjoint instead of backpropagation.
sweep-euler-backsolve: $(STAMP)
	$(PY) experiments/sweep.py --solver euler --steps $(STEPS) --adjoint backsolve \
		--out results/sweep-euler-backsolve $(ARGS)

# The supplement's spheres: sphere10 with 3 seeds; sphere900 with the fully connected
# field (the Conv1d field costs about 670x its 2-D cost there), 3 seeds, 1 ... 32 steps.
sweep-spheres: $(STAMP)
	$(PY) experiments/sweep.py --dataset sphere3 --steps $(STEPS) --out results/sweep-sphere3 $(ARGS)
	$(PY) experiments/sweep.py --dataset sphere10 --steps $(STEPS) --seeds 0 1 2 \
		--out results/sweep-sphere10 $(ARGS)
	$(PY) experiments/sweep.py --dataset sphere900 --field mlp --steps 1 2 4 8 16 32 \
		--seeds 0 1 2 --out results/sweep-sphere900 $(ARGS)

sweep-dopri5: $(STAMP)
	$(PY) experiments/sweep.py --solver dopri5 --tols 1e-1 1e-2 1e-3 1e-4 1e-5 1e-6 \
		--test-solvers dopri5 --factors 0.1 1 10 --out results/sweep-dopri5 $(ARGS)

# make adapt DATASET=sphere2 SOLVER=euler (ARGS=--quick for a smoke test)
DATASET ?= sphere2
SOLVER ?= euler
adapt: $(STAMP)
	$(PY) experiments/adapt.py --dataset $(DATASET) --solver $(SOLVER) \
		--out results/adapt-$(DATASET)-$(SOLVER) $(ARGS)

# Grid search against adaptation (experiments/reproduce_table1.py): spheres 2-D (Euler;
# dopri5 from the paper's tol 1e-6 and from 1e-4 and 1e-3) and, with MNIST=1 and
# $$ODENESS_MNIST_DIR set, MNIST (Euler). TABLE_ARGS go to every sweep and adapted run
# (e.g. TABLE_ARGS="--seeds 0 1 2 --iterations 3000"); finished runs are reused.
MNIST ?= 0
TABLE_ARGS ?=
table1: $(STAMP)
	$(PY) experiments/reproduce_table1.py $(if $(filter 1,$(MNIST)),--mnist) \
		--args "$(TABLE_ARGS)"

figure1: $(STAMP)
	$(PY) experiments/figure1.py --out results/figure1 $(ARGS)

figure2: $(STAMP)
	$(PY) experiments/figure2.py --out results/figure2 $(ARGS)

# Every table and figure of Ott et al. (experiments/reproduce_ott2021.py) into results/,
# resuming finished runs; the tables and figures are then copied into docs/results/.
ott2021: $(STAMP)
	$(PY) experiments/reproduce_ott2021.py $(ARGS)

figure3: $(STAMP)
	$(PY) experiments/figure3.py --out results/figure3 $(ARGS)

# make report RUN=results/sweep-euler/runs/euler-n0002
# Sander et al.: distance, adjoint error, linear ResNets, memory, MNIST fine-tuning
# (fine-tuning reads MNIST from $$ODENESS_MNIST_DIR or ARGS="--data-dir DIR")
resnet-ode: $(STAMP)
	$(PY) experiments/resnet_ode.py --out results/resnet_ode $(ARGS)

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
