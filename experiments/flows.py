"""Train flows over a grid: is their likelihood one? (`experiments.cnf.flow_runs`)."""

if __name__ == "__main__":
    if not __package__:  # run by path: the repository first on the import path
        import _repository  # noqa: F401  # pyright: ignore[reportMissingImports]
    from experiments._cli import script

    raise SystemExit(script(__file__))
