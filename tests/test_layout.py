"""The package's folders show the data flow: every import points down the layers below, none runs back up.

Read from the source with `ast`, lazy imports inside functions included: a lazy import still ties the modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "longwriter_data"

# Lowest first. A module may import its own layer or one below; the first matching prefix decides a module's layer.
LAYERS = (
    ("errors", "redact", "text", "textclean", "child_processes", "prompts"),
    ("quality.length", "quality.judge"),  # word counts and the judge's rubric, which the recipe is checked against
    ("config",),
    ("records", "store"),  # the run directory's typed records, and the store that owns their bytes; neither decides
    # what they mean (hashes, filters)
    ("quality", "backends"),
    ("generate.attempts", "generate.stop", "generate.status"),  # shared by the engine and synthesis (pools/)
    ("pools",),
    ("generate",),
    ("publish",),
    ("build", "commands", "estimate", "judge_run"),
    ("cli", "__main__"),
    ("testing",),  # the fakes: above everything, imported only by tests and scripts
)


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(name: str, path: Path) -> set[str]:
    """Package-relative names of the modules `name` imports (a package's `__init__` counts as its folder)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("longwriter_data"):
                target = node.module.removeprefix("longwriter_data").lstrip(".")
            else:
                continue
            # `from . import x` / `from .pkg import module`: the names may be modules themselves
            found |= {f"{target}.{alias.name}".lstrip(".") for alias in node.names} | {target}
        elif isinstance(node, ast.Import):
            found |= {alias.name.removeprefix("longwriter_data").lstrip(".") for alias in node.names
                      if alias.name.startswith("longwriter_data")}
    return found


def _layer(name: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return index
    raise AssertionError(f"longwriter_data.{name} is in no layer of tests/test_layout.py: add it where it belongs")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {target for target in _imports(name, path) if target in modules and target != name}
            for name, path in modules.items() if name}


def test_every_module_has_a_layer():
    for name in _graph():
        _layer(name)


def test_no_import_runs_back_up():
    upward = sorted(f"{name} (layer {_layer(name)}) imports {target} (layer {_layer(target)})"
                    for name, targets in _graph().items() for target in targets if _layer(target) > _layer(name))
    assert upward == []


@pytest.mark.parametrize("name, target", [
    ("publish.card", "publish.inspection"),  # the card and `inspect` share views.py, not each other
    ("build", "commands"),  # a build and the `push` command share publish.hub.push_and_say
    ("build", "cli"),
])
def test_siblings_that_must_not_depend_on_each_other(name, target):
    assert target not in _graph()[name]


def test_the_import_graph_has_no_cycles():
    graph, done, path = _graph(), set(), []

    def visit(name: str) -> None:
        if name in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        path.append(name)
        for target in sorted(graph[name]):
            visit(target)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


# The OpenAI SDK and its transport belong to one backend module: the rest decide through backends/base.py's Failure.
SDK_USERS = {"backends.openai_http"}


def test_only_the_openai_http_backend_imports_the_sdk():
    users = set()
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(n == "openai" or n.startswith("openai.") for n in names):
                users.add(name)
    assert users == SDK_USERS


def test_no_module_outside_backends_imports_a_backend_kinds_module():
    """A kind is its module and its settings model: the rest reach it by `backend.kind`, through backends/factory.py
    (the class) and config.py (the settings model), so adding a kind changes no other module."""
    from longwriter_data.config import BACKEND_KINDS

    kind_modules = {"backends." + model.module.partition(":")[0] for model in BACKEND_KINDS.values()}
    assert kind_modules >= {"backends.openai_http", "backends.local"}
    users = sorted(f"{name} imports {target}" for name, targets in _graph().items()
                   if not name.startswith("backends") for target in targets & kind_modules)
    assert users == []
