"""The layout's promises, checked: no import circle among AXR's modules (function-level imports included),
and the reasoning layer never imports the evaluation or training layers."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {"reasoning/_axr": "axr", "reasoning": "axr.reasoning", "eval": "axr.eval", "training": "axr.training"}


def _module_name(path: Path) -> str:
    for folder, package in PACKAGES.items():  # reasoning/_axr before reasoning: the longer prefix first
        if path.is_relative_to(REPO / folder):
            parts = [p for p in path.relative_to(REPO / folder).with_suffix("").parts if p != "__init__"]
            return ".".join([package, *parts])
    raise ValueError(path)


def import_graph() -> dict[str, set[str]]:
    """Module -> the AXR modules it imports anywhere in its text (a package import counts as its __init__)."""
    files = {_module_name(p): p for folder in PACKAGES for p in (REPO / folder).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circle():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_the_reasoning_layer_imports_neither_eval_nor_training():
    graph = import_graph()
    upward = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("axr.reasoning")
        for target in targets
        if target.startswith(("axr.eval", "axr.training"))
    }
    assert upward == set()
