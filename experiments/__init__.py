"""The papers' studies, built on odeness's public API, and their command-line scripts.

This package lives in the repository beside `odeness` and is not installed with it.

- `experiments.lab`: what every study shares (studies as data, sweep and adapted-run
  folders, the ODE-ness report, tables and figures);
- `experiments.ott2021`: Ott et al. (ICLR 2021), every figure, table and sweep defined
  once, and the modules particular to one figure or table;
- `experiments.sander2022`: Sander et al. (NeurIPS 2022), the five ResNet ↔ ODE
  experiments;
- `experiments/*.py`: the command-line scripts (`study.py`, `sweep.py`, `adapt.py`,
  `table1.py`, `figure1.py`, `figure2.py`, `figure3.py`, `ode_report.py`, `resnets.py`,
  `reproduce_ott2021.py`, `reproduce_table1.py`), runnable by path or as
  `python -m experiments.<name>`.

The core package `odeness` never imports this one.
"""
