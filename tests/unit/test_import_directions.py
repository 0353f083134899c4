"""The house stands: every import of ours points the allowed way (STYLE.md, "A layout that
shows the architecture"). Walks each module's AST, so `importlib.import_module("api.app")`
counts as an import of `api` just as `import api.app` does."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = ("api", "worker", "cli", "service", "domain", "tools", "tests")
# package -> the packages of ours it must never import
FORBIDDEN = {
    "domain": {"api", "worker", "cli", "service", "tools", "tests"},
    "service": {"api", "worker", "cli", "tools", "tests"},
    "api": {"worker", "cli", "tools", "tests"},
    "worker": {"api", "cli", "tools", "tests"},
    "tools": {"api", "worker", "cli", "service", "tests"},
    "cli": {"tests"},
}
_DYNAMIC = {"import_module", "__import__"}


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every module the source imports, statically or by name."""
    package = module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.append((node.lineno, name))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called in _DYNAMIC and isinstance(first, ast.Constant):
                found.append((node.lineno, str(first.value)))
    return sorted(found)


def violations(source: str, module: str) -> list[str]:
    top = module.split(".", 1)[0]
    banned = FORBIDDEN.get(top, set())
    return [
        f"{module}:{line} imports {name}"
        for line, name in imported_modules(source, module)
        if name.split(".", 1)[0] in banned
    ]


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append((".".join(parts), path))
    return found


def test_every_import_points_the_allowed_way() -> None:
    modules = _modules()
    assert len(modules) > 80  # the walk found the tree, not an empty directory
    found = [v for module, path in modules for v in violations(path.read_text(), module)]
    assert found == []


def test_a_service_module_reaching_an_edge_by_name_is_caught() -> None:
    # What service/cli.py did before the redesign: load the edges with importlib.
    source = (
        "import importlib\n"
        "from service import db\n"
        "def serve():\n"
        "    return importlib.import_module('api.app').create_app()\n"
        "def worker():\n"
        "    return importlib.import_module('worker.main').run\n"
    )
    assert violations(source, "service.cli") == [
        "service.cli:4 imports api.app",
        "service.cli:6 imports worker.main",
    ]


def test_static_relative_and_dynamic_imports_are_all_seen() -> None:
    source = (
        "import domain.readings\n"
        "from api.schemas import Problem\n"
        "from ..routes import sites\n"
        "__import__('tests.harness')\n"
    )
    assert imported_modules(source, "api.routes.sites") == [
        (1, "domain.readings"),
        (2, "api.schemas"),
        (3, "api.routes"),
        (4, "tests.harness"),
    ]
    assert violations("from service import db\n", "domain.rules") == [
        "domain.rules:1 imports service"
    ]
    assert violations("import worker.jobs\n", "api.app") == ["api.app:1 imports worker.jobs"]
    assert violations("from tests.harness import services\n", "cli.run") == [
        "cli.run:1 imports tests.harness"
    ]
