"""The flow study (`study.py cnf`): `make cnf`."""

if __name__ == "__main__":
    if not __package__:  # run by path: the repository first on the import path
        import _repository  # noqa: F401  # pyright: ignore[reportMissingImports]
    from experiments._cli import script

    raise SystemExit(script(__file__))
