"""The package as users meet it: two layers, no import side effects, a complete API."""

import ast
import subprocess
import sys
import types
import zipfile
from importlib.metadata import version
from pathlib import Path

import odeness

CORE = Path(odeness.__file__).parent
REPO = Path(__file__).resolve().parents[1]


def test_importing_odeness_leaves_matplotlib_and_the_studies_out():
    code = (
        "import sys, odeness; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('matplotlib', 'experiments')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_core_never_imports_the_studies_or_matplotlib():
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not roots & {"experiments", "matplotlib"}, (path, roots)


def test_public_names():
    assert odeness.__version__ == version("odeness")
    assert odeness.__all__ == sorted(odeness.__all__, key=lambda n: (n.lower(), n))
    public = {n for n in dir(odeness) if not n.startswith("_")}
    namespaces = {"data", "diagnostics", "files", "resnet_ode"}
    assert public - namespaces | {"__version__"} == set(odeness.__all__)
    assert all(isinstance(getattr(odeness, n), types.ModuleType) for n in namespaces)
    # No module in __all__: every name there is a function, class or type.
    assert not any(
        isinstance(getattr(odeness, n), types.ModuleType) for n in odeness.__all__
    )
    for name in namespaces:  # a namespace lists its public names and holds no module
        module = getattr(odeness, name)
        assert set(module.__all__) <= set(dir(module)), name
        assert not any(
            isinstance(getattr(module, n), types.ModuleType) for n in module.__all__
        )


def test_implementation_modules_are_private():
    public_files = {p.stem for p in CORE.glob("*.py") if not p.stem.startswith("_")}
    assert public_files == {"diagnostics", "files", "resnet_ode"}
    assert {p.stem for p in (CORE / "data").glob("*.py")} == {
        "__init__", "_archives", "_densities", "_images", "_spheres", "_three_minima"
    }  # fmt: skip


def test_no_two_modules_share_a_file_name():
    names = [
        p.name
        for folder in ("odeness", "experiments", "benchmarks", "examples", "tests", "docs")
        for p in (REPO / folder).rglob("*.py")
        if p.name != "__init__.py"
    ]
    assert sorted(names) == sorted(set(names)), sorted(
        n for n in set(names) if names.count(n) > 1
    )


def _imports(path: Path, package: str) -> set[str]:
    """The modules of the project that `path` imports (absolute and relative)."""
    found = set()
    module = path.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
    parts = module.split(".")
    if path.name == "__init__.py":
        parts = parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*parts[: len(parts) - node.level + (path.name == "__init__.py")], base]
                ).strip(".")
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] == package}


def test_no_import_cycle():
    graph = {}
    for package in ("odeness", "experiments", "benchmarks"):
        for path in (REPO / package).rglob("*.py"):
            name = path.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
            name = name.removesuffix(".__init__")
            graph[name] = _imports(path, package)
    modules = set(graph)
    edges = {m: {d for d in deps if d in modules and d != m} for m, deps in graph.items()}
    # A package's __init__ importing its own submodules is not a cycle of theirs.
    for m, deps in edges.items():
        edges[m] = {d for d in deps if not m.startswith(d + ".")}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in edges[m]:
            if state.get(d) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*stack, m, d])}")
            if d not in state:
                visit(d, [*stack, m])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])


def test_the_wheel_holds_odeness_alone(tmp_path):
    """`pip install odeness` installs the library: the studies, benchmarks and tests stay
    in the repository (no top-level `experiments` package in a user's environment)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path), str(REPO)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("odeness-*.whl")
    with zipfile.ZipFile(wheel) as z:
        tops = {name.split("/")[0] for name in z.namelist()}
        metadata = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
    assert tops == {"odeness", wheel.name.split("-py3")[0] + ".dist-info"}
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist")]
    assert not any("matplotlib" in r and "extra ==" not in r for r in requires)
    assert any("matplotlib" in r and 'extra == "studies"' in r for r in requires)


_BY_PATH = """
import contextlib, io, runpy, sys
repo = sys.argv[1]
for path in sys.argv[2:]:
    # As `python PATH --help` starts: the script's folder first on the path, and nothing
    # of the studies imported yet.
    loaded = [m for m in sys.modules if m.split(".")[0] in ("experiments", "_repository")]
    for name in loaded:
        del sys.modules[name]
    sys.path[:] = [path.rsplit("/", 1)[0]] + [p for p in sys.path[1:] if p != repo]
    sys.argv = [path, "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as e:
            assert e.code in (0, None), (path, e.code)
    assert out.getvalue().strip(), path  # its help
"""


def test_every_script_runs_by_path(tmp_path):
    """`python experiments/NAME.py` and `python examples/NAME.py` work from a clone,
    whatever the working folder (each script is run by path with `--help`, in one
    interpreter)."""
    scripts = sorted((REPO / "experiments").glob("[!_]*.py"))
    scripts += sorted((REPO / "examples").glob("*.py"))
    assert len(scripts) > 15
    done = subprocess.run(
        [sys.executable, "-c", _BY_PATH, str(REPO), *map(str, scripts)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
