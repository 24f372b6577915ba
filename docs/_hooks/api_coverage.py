"""MkDocs hook: every public name of odeness is in the API reference once, with a
docstring.

The public names are those of `odeness.__all__` and of the `__all__` of each public
namespace (the submodules of `odeness` without a leading underscore: `odeness.data`,
`odeness.diagnostics`, `odeness.files`, `odeness.resnet_ode`). A name is covered when an
API page holds a `::: identifier` block for it (under any of its names); it must be
covered by exactly one block and have a docstring, and every block must name something
importable. Each miss is a warning, so `mkdocs build --strict` fails on it.
"""

import importlib
import inspect
import logging
import re
import types
from collections import Counter

log = logging.getLogger("mkdocs.hooks.api_coverage")

_IDENTIFIER = re.compile(r"^:::\s+([\w.]+)", re.MULTILINE)
_blocks: list[str] = []


def on_pre_build(config, **kwargs):
    _blocks.clear()


def on_page_markdown(markdown, page, config, files, **kwargs):
    if page.file.src_uri.startswith("api/"):
        _blocks.extend(_IDENTIFIER.findall(markdown))
    return markdown


def _resolve(identifier: str):
    parts = identifier.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(identifier)


def public_namespaces() -> list[types.ModuleType]:
    """`odeness`'s submodules that a user imports as a namespace."""
    odeness = importlib.import_module("odeness")
    return [
        obj
        for name, obj in vars(odeness).items()
        if isinstance(obj, types.ModuleType) and not name.startswith("_")
    ]


def public_names() -> dict[str, object]:
    """Every public name, qualified, and its object (the namespaces included)."""
    odeness = importlib.import_module("odeness")
    names: dict[str, object] = {
        f"odeness.{n}": getattr(odeness, n) for n in odeness.__all__ if n != "__version__"
    }
    for module in public_namespaces():
        names[module.__name__] = module
        names.update({f"{module.__name__}.{n}": getattr(module, n) for n in module.__all__})
    return names


def _attribute_docstring(name: str) -> str | None:
    """The docstring written under an assignment (a type alias), as griffe reads it."""
    import griffe

    module, attribute = name.rsplit(".", 1)
    found = griffe.load(module, resolve_aliases=True)[attribute]
    return found.docstring.value if found.docstring else None


def _has_docstring(name: str, obj) -> bool:
    if not (inspect.isclass(obj) or inspect.ismodule(obj) or inspect.isroutine(obj)):
        doc = _attribute_docstring(name)  # a type alias or constant
        return bool(doc and doc.strip())
    doc = obj.__doc__ if isinstance(obj, type | types.ModuleType) else inspect.getdoc(obj)
    short = name.rsplit(".", 1)[-1]
    # dataclasses and NamedTuples without a docstring get `Name(field, ...)` as one.
    return bool(doc and doc.strip()) and not doc.startswith(f"{short}(")


def on_post_build(config, **kwargs):
    documented = {}
    for identifier in _blocks:
        try:
            documented[identifier] = _resolve(identifier)
        except (ImportError, AttributeError):
            log.warning(f"API reference: `::: {identifier}` names nothing importable")
    times = Counter(id(obj) for obj in documented.values())
    for identifier, count in Counter(_blocks).items():
        if count > 1:
            log.warning(f"API reference: `::: {identifier}` appears {count} times")
    seen: set[int] = set()
    for name, obj in public_names().items():
        if id(obj) in seen:  # the same object under another public name
            continue
        seen.add(id(obj))
        if not isinstance(obj, types.ModuleType):
            if times[id(obj)] == 0:
                log.warning(f"API reference: the public name {name} is on no API page")
            elif times[id(obj)] > 1:
                log.warning(f"API reference: the public name {name} is documented twice")
        if not _has_docstring(name, obj):
            log.warning(f"API reference: the public name {name} has no docstring")
