# Every target creates .venv and installs the package on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The papers' figures, tables and sweeps: each is defined once, in experiments/ott2021 and
# experiments/sander2022 (`python experiments/study.py --list`); ARGS go to its script.
STUDIES := sweep-euler sweep-midpoint sweep-rk4 sweep-fehlberg2 sweep-dopri5 \
	sweep-euler-backsolve sweep-spheres figure1 figure2 figure3 resnet-ode \
	certify-euler certify-mnist

.PHONY: test $(STUDIES) report bench lint clean adapt table1 docs docs-serve ott2021 regularisation certification cnf

# uv installs the same packages as pip in a fraction of the time (it fetches and unpacks
# in parallel); pip where uv cannot be had. Both compile the packages' bytecode at install:
# where PYTHONDONTWRITEBYTECODE is set, every process would compile it again otherwise.
EXTRAS := .[dev,docs,studies]
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	($(VENV)/bin/pip install -q uv 2>/dev/null \
		&& $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -e '$(EXTRAS)') \
		|| $(VENV)/bin/pip install -q -e '$(EXTRAS)'
	touch $(STAMP)

# MathJax is served from the site itself: the npm package, fetched once and checked.
MATHJAX := docs/assets/mathjax/tex-svg.js
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := d4295dc33744836935c1399feece5159577b34c5c8ffb9f1c6324cd82e03a882

# The strict docs build (`docs`, below) runs beside pytest: a few seconds of one core,
# which the test workers leave idle now and then. Either failing fails the target. (No
# $(MAKE) in this recipe: `make -n test`, which the tests run, would execute it.)
test: $(STAMP) $(MATHJAX)
	@($(DOCS_BUILD)) & docs=$$!; \
		echo "$(PY) -m pytest -q -n auto --dist worksteal"; \
		$(PY) -m pytest -q -n auto --dist worksteal; tests=$$?; \
		wait $$docs || { echo "error: the docs build failed (above)"; exit 1; }; exit $$tests

# The docs site (mkdocs-material + mkdocstrings) into site/, strict: a broken link or
# anchor, a missing reference or a public name without a docstring fails the build.
export NO_MKDOCS_2_WARNING := 1
$(MATHJAX):
	@command -v npm >/dev/null || { echo "error: make docs needs npm to fetch MathJax $(MATHJAX_VERSION) (or put its es5/tex-svg.js at $@)"; exit 2; }
	@tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null \
		&& tar xzf mathjax-$(MATHJAX_VERSION).tgz package/es5/tex-svg.js) \
		&& echo "$(MATHJAX_SHA256)  $$tmp/package/es5/tex-svg.js" | sha256sum -c --quiet \
		&& mkdir -p $(@D) && cp $$tmp/package/es5/tex-svg.js $@; status=$$?; rm -rf $$tmp; exit $$status

# (`--quiet` would also silence the warnings that make `--strict` fail: the log is shown
# only when the build fails.)
DOCS_BUILD = log=$$(mktemp) && if $(VENV)/bin/mkdocs build --strict >$$log 2>&1; \
	then rm $$log; else grep -v '^INFO' $$log; rm $$log; exit 1; fi
docs: $(STAMP) $(MATHJAX)
	@$(DOCS_BUILD)

docs-serve: $(STAMP) $(MATHJAX)
	$(VENV)/bin/mkdocs serve --strict

$(STUDIES): $(STAMP)
	$(PY) experiments/study.py $@ $(ARGS)

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

# Every table and figure of Ott et al. (experiments/reproduce_ott2021.py) into results/,
# resuming finished runs; the tables and figures are then copied into docs/results/.
ott2021: $(STAMP)
	$(PY) experiments/reproduce_ott2021.py $(ARGS)

# The regularisers against the step-size adaptation (experiments/reproduce_regularisation.py)
# into results/regularisation/, resuming; the comparison is copied into docs/results/.
regularisation: $(STAMP)
	$(PY) experiments/reproduce_regularisation.py $(ARGS)

# Continuous normalising flows (experiments/reproduce_cnf.py): is the likelihood a
# likelihood? Into results/cnf/; the tables and figures are copied into docs/results/cnf/.
cnf: $(STAMP)
	$(PY) experiments/reproduce_cnf.py $(ARGS)

# The certification studies (experiments/reproduce_certification.py) of the models of
# `make sweep-euler` and `make regularisation`; the summaries are copied into docs/results/.
certification: $(STAMP)
	$(PY) experiments/reproduce_certification.py $(ARGS)

# make report RUN=results/sweep-euler/runs/euler-n0002
report: $(STAMP)
	$(PY) experiments/ode_report.py $(RUN) $(ARGS)

# make bench [BENCH="train_step adjoint_cost ..."] [ARGS=--quick]: benchmarks/, one each
BENCH ?=
bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH) $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pyright

clean:
	rm -rf $(VENV) .pytest_cache
