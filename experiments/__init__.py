"""The papers' studies, built on odeness's public API, and their command-line scripts.

This package lives in the repository beside `odeness` and is not installed with it.

- `experiments.lab`: what every study shares (studies as data, sweep and adapted-run
  folders, the ODE-ness report, tables and figures);
- `experiments.ott2021`: Ott et al. (ICLR 2021), every figure, table and sweep defined
  once, and the modules particular to one figure or table;
- `experiments.sander2022`: Sander et al. (NeurIPS 2022), the five ResNet ↔ ODE
  experiments;
- `experiments.regularisation`, `experiments.certification`: the regularisers compared
  and the three certificates, on the papers' models;
- `experiments/*.py`: the command-line scripts, one per kind of study and per group
  (`python experiments/study.py --list` names the studies), runnable by path or as
  `python -m experiments.<name>`.

The core package `odeness` never imports this one.
"""
