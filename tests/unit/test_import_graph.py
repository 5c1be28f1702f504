"""The import graph of deploy/: no circles, not even through a function-level import, and no upward import.

Read from the source with ast (nothing is imported), so an import inside a function counts like one
at the top: Python runs it too, later, and a circle closed that way is a circle. Imports under
``if TYPE_CHECKING:`` are left out; they never run.

"Upward" has two forms here. The task flows (deploy/run/) are the top floor: only tasks.py and
deploy/cli.py may import them. And a floor (a package such as deploy/aws/, or a top-level module)
must not import a floor that imports it back: a circle between floors, even when no two modules
close it, means one of them reaches up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

#: Circles and upward imports that predate the checks, each owned by another change of issue 23.
#: An entry here is a debt, not a permission: a new circle fails.
#: None left: each entry here was a debt the restructure paid (issue 23); add one only with its reason.
KNOWN_MODULE_CIRCLES: frozenset[frozenset[str]] = frozenset()
KNOWN_FLOOR_CIRCLES: frozenset[frozenset[str]] = frozenset()
TOP_FLOOR = "deploy.run"
MAY_IMPORT_THE_TOP = ("deploy.run", "deploy.cli")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth; ``if TYPE_CHECKING:`` bodies are skipped."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path = DEPLOY) -> dict[str, set[str]]:
    """module -> the deploy modules it imports (``from deploy.aws import calls`` names deploy.aws.calls,
    ``from deploy.verify import sandbox_python`` names the package deploy.verify)."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from . import x / from .x import y
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            for dotted in targets:
                target = dotted
                while target and target not in files:  # import deploy.aws.calls.x -> deploy.aws.calls
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def circles(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[frozenset[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.add(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(frozenset(members))
    return found


def floor(module: str) -> str:
    """deploy.aws.calls -> deploy.aws; deploy.plan -> deploy.plan (a top-level module is its own floor)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def floor_graph(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        out.setdefault(floor(module), set()).update(floor(t) for t in targets if floor(t) != floor(module))
    return out


def imports_of_the_top(graph: Mapping[str, Iterable[str]]) -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if floor(target) == TOP_FLOOR and not module.startswith(MAY_IMPORT_THE_TOP)
    )


# ---------------------------------------------------------------------------- the checks


def test_no_module_imports_another_that_imports_it_back() -> None:
    new = [sorted(c) for c in circles(import_graph()) if c not in KNOWN_MODULE_CIRCLES]
    assert new == [], f"import circles in deploy/ (function-level imports count): {new}"


def test_nothing_below_the_task_flows_imports_them() -> None:
    assert imports_of_the_top(import_graph()) == []


def test_no_floor_imports_a_floor_that_imports_it_back() -> None:
    new = [sorted(c) for c in circles(floor_graph(import_graph())) if c not in KNOWN_FLOOR_CIRCLES]
    assert new == [], f"floors of deploy/ importing each other (an upward import): {new}"


# ---------------------------------------------------------------------------- the checks can fail


def _tree(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "deploy"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_circle_closed_by_a_function_level_import_is_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from deploy import b\n",
            "b.py": "def late():\n    from deploy import a\n",
            "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from deploy import a\n",
        },
    )
    graph = import_graph(root)
    assert graph["deploy.c"] == set()  # TYPE_CHECKING imports never run
    assert circles(graph) == [frozenset({"deploy.a", "deploy.b"})]


def test_an_import_of_the_flows_from_below_is_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "run/__init__.py": "",
            "run/flow.py": "from deploy.aws import calls\n",
            "aws/__init__.py": "",
            "aws/calls.py": "def f():\n    from deploy.run.flow import x\n",
            "cli.py": "from deploy.run import flow\n",
        },
    )
    graph = import_graph(root)
    assert imports_of_the_top(graph) == ["deploy.aws.calls -> deploy.run.flow"]
    assert circles(floor_graph(graph)) == [frozenset({"deploy.aws", "deploy.run"})]


def test_a_floor_reaching_up_without_a_module_circle_is_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "transaction.py": "from deploy.aws import calls\n",
            "aws/__init__.py": "",
            "aws/calls.py": "",
            "aws/attach.py": "from deploy import transaction\n",
        },
    )
    graph = import_graph(root)
    assert circles(graph) == []
    assert circles(floor_graph(graph)) == [frozenset({"deploy.aws", "deploy.transaction"})]
