"""The documentation's code runs: every Python block of Getting started and the Guides
is executed (the blocks of a page in order, each in a fresh namespace), its printed
output compared with the page's, and every shell command of those pages, the command
reference, the home page and the README is checked against the scripts' parsers, the
Makefile and pyproject.toml.

Blocks that include a file (`--8<--`) are the examples, run by `test_examples.py`.
"""

import contextlib
import functools
import importlib
import io
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from experiments import _cli as cli

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [DOCS / "getting-started.md", *sorted((DOCS / "guides").glob("*.md"))]
SHELL_PAGES = [*PAGES, DOCS / "commands.md", DOCS / "index.md", REPO / "README.md"]
# A fenced block: its language and its body.
_BLOCK = re.compile(
    r"^(?P<indent> *)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _blocks(page: Path, lang: str) -> list[str]:
    return [
        m["body"]
        for m in _BLOCK.finditer(page.read_text())
        if m["lang"] == lang and "--8<--" not in m["body"]
    ]


def _printed(page: Path, code: str) -> str | None:
    """The `text` block that follows `code` on the page after "It printed", if any."""
    text = page.read_text()
    after = text[text.index(code) + len(code) :]
    m = re.match(r"\s*```\s*It printed[^\n]*\n\s*```text\n(.*?)```", after, re.S)
    return m[1] if m else None


def _close(documented: str, printed: str) -> bool:
    """The same text, and numbers within 10% (or 0.1) of the documented ones.

    The tests compile with other XLA flags than a user's run (`conftest.py`), and a
    trained model's numbers move with float rounding: the tolerance catches a changed
    result, not a changed rounding."""
    doc_lines, out_lines = documented.strip().splitlines(), printed.strip().splitlines()
    if len(doc_lines) != len(out_lines):
        return False
    for doc, out in zip(doc_lines, out_lines, strict=True):
        if _NUMBER.sub("#", doc) != _NUMBER.sub("#", out):
            return False
        for a, b in zip(_NUMBER.findall(doc), _NUMBER.findall(out), strict=True):
            x, y = float(a), float(b)
            if abs(x - y) > max(0.1, 0.1 * abs(x)):
                return False
    return True


def _python_cases():
    for page in PAGES:
        for i, code in enumerate(_blocks(page, "python")):
            slow = (
                [pytest.mark.slow]
                if page.stem in ("getting-started", "your-own-flow")
                else []
            )
            yield pytest.param(page, code, id=f"{page.stem}-{i}", marks=slow)


@pytest.mark.parametrize("page, code", list(_python_cases()))
def test_python_block_runs(page, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a block writes stays out of the repository
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"{page.name} block", "exec"), {"__name__": "__docs__"})
    documented = _printed(page, code)
    if documented is not None:
        assert _close(documented, out.getvalue()), (documented, out.getvalue())


@pytest.mark.parametrize(
    "page", [REPO / "README.md", DOCS / "index.md"], ids=["README", "home"]
)
def test_landing_example_is_getting_started(page):
    """The README's and the home page's example is the one Getting started runs."""
    (code,) = _blocks(page, "python")
    assert code in _blocks(DOCS / "getting-started.md", "python")
    (output,) = _blocks(page, "text")
    assert output in _blocks(DOCS / "getting-started.md", "text")


def test_every_guide_has_code():
    for page in PAGES:
        text = page.read_text()
        assert "```python" in text or "```sh" in text, page


def _commands(body: str):
    for line in body.replace("\\\n", " ").splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith("#"):
            yield line


def _shell_cases():
    for page in SHELL_PAGES:
        for body in _blocks(page, "sh"):
            for command in _commands(body):
                yield pytest.param(command, id=f"{page.stem}: {command[:60]}")


def test_no_recipe_runs_under_make_n():
    """`make -n` (`test_shell_command_is_valid`) runs a recipe line naming `$(MAKE)`."""
    recipes = [line for line in (REPO / "Makefile").read_text().splitlines()
               if line.startswith("\t")]  # fmt: skip
    assert recipes and not [
        line for line in recipes if "$(MAKE)" in line or "${MAKE}" in line
    ]


@pytest.mark.parametrize("command", list(_shell_cases()))
def test_shell_command_is_valid(command, parse_only):
    words = [w for w in shlex.split(command) if not re.fullmatch(r"[A-Z_0-9]+=\S*", w)]
    script = next(
        (w for w in words if re.fullmatch(r"(experiments|examples)/\w+\.py", w)), None
    )
    if script is not None:
        argv = words[words.index(script) + 1 :]
        if script.startswith("experiments/"):
            run = functools.partial(cli.main, [Path(script).stem, *argv])
        else:
            run = functools.partial(
                importlib.import_module(script[:-3].replace("/", ".")).main, argv
            )
        with pytest.raises(parse_only):
            run()
    elif words[0] == "make":
        done = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
    elif words[:2] == ["pip", "install"]:
        extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
        for word in words[2:]:
            for extra in re.findall(r"\[([\w,]+)\]", word):
                assert set(extra.split(",")) <= set(extras), word
    else:
        pytest.fail(f"no check for the documented command {command!r}")
