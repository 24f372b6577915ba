"""MkDocs hook: every public name of odeness is in the API reference, with a docstring.

The public names are those of `odeness.__all__` and, for each public submodule, the
names it defines that do not start with an underscore. A name is covered when an API
page holds a `::: identifier` block for it (under any of its names) or for the module
that defines it; every public name and module needs a docstring. Each miss is a
warning, so `mkdocs build --strict` fails on it.
"""

import importlib
import inspect
import logging
import re
import types

log = logging.getLogger("mkdocs.hooks.api_coverage")

_IDENTIFIER = re.compile(r"^:::\s+([\w.]+)", re.MULTILINE)
# Public submodules of `odeness.data` (`images` and `archives` import tensorflow-datasets,
# so `import odeness` leaves them out).
_EXTRA_MODULES = (
    "odeness.data.archives",
    "odeness.data.images",
    "odeness.data.spheres",
    "odeness.data.three_minima",
)
_documented: set[str] = set()


def on_pre_build(config, **kwargs):
    _documented.clear()


def on_page_markdown(markdown, page, config, files, **kwargs):
    _documented.update(_IDENTIFIER.findall(markdown))
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


def _defined_names(module: types.ModuleType) -> dict[str, object]:
    return {
        f"{module.__name__}.{name}": obj
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and not isinstance(obj, types.ModuleType)
        and getattr(obj, "__module__", None) == module.__name__
    }


def _public_names() -> dict[str, object]:
    odeness = importlib.import_module("odeness")
    names: dict[str, object] = {}
    modules = [importlib.import_module(name) for name in _EXTRA_MODULES]
    for name in odeness.__all__:
        if name == "__version__":
            continue
        obj = getattr(odeness, name)
        if isinstance(obj, types.ModuleType):
            modules.append(obj)
        else:
            names[f"odeness.{name}"] = obj
    for module in modules:
        names[module.__name__] = module
        names.update(_defined_names(module))
    return names


def _has_docstring(name: str, obj) -> bool:
    doc = obj.__doc__ if isinstance(obj, type | types.ModuleType) else inspect.getdoc(obj)
    short = name.rsplit(".", 1)[-1]
    # dataclasses and NamedTuples without a docstring get `Name(field, ...)` as one.
    return bool(doc and doc.strip()) and not doc.startswith(f"{short}(")


def on_post_build(config, **kwargs):
    documented = {}
    for identifier in sorted(_documented):
        try:
            documented[identifier] = _resolve(identifier)
        except (ImportError, AttributeError):
            log.warning(f"API reference: `::: {identifier}` names nothing importable")
    documented_ids = {id(obj) for obj in documented.values()}
    documented_modules = {
        name for name, obj in documented.items() if isinstance(obj, types.ModuleType)
    }
    for name, obj in _public_names().items():
        module = name.rsplit(".", 1)[0]
        on_a_page = id(obj) in documented_ids or module in documented_modules
        if not isinstance(obj, types.ModuleType) and not on_a_page:
            log.warning(f"API reference: the public name {name} is on no API page")
        if not _has_docstring(name, obj):
            log.warning(f"API reference: the public name {name} has no docstring")
