"""The package as users meet it: two layers, no import side effects, a complete API."""

import ast
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import odeness

CORE = Path(odeness.__file__).parent


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
    assert public | {"__version__"} == set(odeness.__all__)
    # `odeness.train` is the function; the training loop's module is `odeness.training`.
    assert callable(odeness.train) and odeness.training.train is odeness.train
