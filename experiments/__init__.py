"""The papers' studies, built on odeness's public API, and their command-line scripts.

It lives in the repository beside `odeness` (which never imports it) and is not installed:
`experiments.lab` holds what every study shares; `experiments.ott2021` (Ott et al., ICLR
2021), `experiments.sander2022` (Sander et al., NeurIPS 2022), `experiments.regularisation`
and `experiments.certification` the studies; `experiments/*.py` the scripts, one per kind
of study and per group (`python experiments/study.py --list` names the studies), runnable
by path or as `python -m experiments.<name>`.
"""
