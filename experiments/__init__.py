"""The papers' studies, built on odeness's public API, and their command-line scripts.

- `experiments.ott2021`: Ott et al. (ICLR 2021): sweep folders and their summaries, the
  adapted-run folder, Table 1, the ODE-ness report;
- `experiments.sander2022`: Sander et al. (NeurIPS 2022): the five ResNet ↔ ODE
  experiments;
- `experiments.plots`: the matplotlib figures of both;
- `experiments/*.py`: the command-line scripts (`sweep.py`, `adapt.py`, `table1.py`,
  `figure1.py`, `ode_report.py`, `resnet_ode.py`, `bench.py`), runnable by path or as
  `python -m experiments.<name>`.

The core package `odeness` never imports this one.
"""
