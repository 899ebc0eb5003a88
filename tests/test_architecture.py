"""The package's floors (each subpackage's `__init__` says what it may import): imports go one
way, down, and no module imports itself back through others."""

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "cnvkit_nf"
# Lowest first; a part may import only parts on lower floors (state and storage share one
# floor and import neither each other nor anything above contract).
FLOORS = [{"pipeline_files"}, {"contract"}, {"state", "storage"}, {"reference"}, {"launch"},
          {"service"}, {"cli"}]
FLOOR = {part: level for level, parts in enumerate(FLOORS) for part in parts}


def _imports(path: Path) -> set[str]:
    """The modules of cnvkit_nf that a file imports (dotted, as far as it names them)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cnvkit_nf"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found |= {name if _module(name) else node.module for name in names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cnvkit_nf.")}
    return found


def _module(dotted: str) -> Path | None:
    """The file of a dotted module name of the package, if it is one."""
    path = ROOT.joinpath(*dotted.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _part(dotted: str) -> str:
    """The floor's part of a module: its subpackage, or its top-level module's name."""
    return dotted.split(".")[1]


def _graph() -> dict[str, set[str]]:
    """Each module of the package (a subpackage by its own name) -> the modules it imports."""
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    del modules["cnvkit_nf"]  # the package's docstring
    return {name: {m for m in _imports(path) if _module(m)} - {name}
            for name, path in modules.items()}


def test_imports_go_down_the_floors():
    graph = _graph()
    assert set(FLOOR) == {_part(name) for name in graph}
    upward = sorted(f"{name} -> {target}" for name, targets in graph.items()
                    for target in targets
                    if _part(target) != _part(name) and FLOOR[_part(target)] >= FLOOR[_part(name)])
    assert upward == []


def test_no_module_imports_itself_back():
    graph = _graph()

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for target in graph.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    assert sorted(name for name in graph if name in reaches(name)) == []
