"""Static import graph of the project's own modules (ast, no imports executed).

`module_graph(root)` maps each module to the modules of ours it imports (anywhere in
the file, inside functions too, but not under `if TYPE_CHECKING:`) and the external
top-level names it imports. `import_cycles` lists the strongly connected components
with more than one module.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "credential", "ledger", "issuer", "verifier", "mobile_stub", "healthbridge")


@dataclass
class Graph:
    internal: dict[str, set[str]] = field(default_factory=dict)
    external: dict[str, set[str]] = field(default_factory=dict)


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _files(root: Path, tops: Iterable[str]) -> Iterator[Path]:
    for top in tops:
        base = root / top
        if base.is_file():
            yield base
        elif base.is_dir():
            yield from (p for p in sorted(base.rglob("*.py")) if not _alembic_script(p))


def _alembic_script(path: Path) -> bool:
    # Alembic runs env.py and the revisions itself; they are not part of the import graph.
    return "migrations" in path.parts and (path.name == "env.py" or "versions" in path.parts)


def modules_under(root: Path, paths: Iterable[str]) -> list[str]:
    """Module names of the given files and folders (relative to `root`)."""
    return [_module_name(root, p) for p in _files(root, paths)]


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            for a in node.names:
                yield f"{prefix}.{a.name}"  # a submodule, or a name inside `prefix`
        stack.extend(ast.iter_child_nodes(node))


@functools.cache
def module_graph(root: Path, extra_roots: tuple[str, ...] = ()) -> Graph:
    """Cached: the tests of one session ask for the same graph several times."""
    files = {_module_name(root, p): p for p in _files(root, (*PACKAGES, *extra_roots))}
    graph = Graph()
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        internal: set[str] = set()
        external: set[str] = set()
        for target in _imports(tree, name, path.name == "__init__.py"):
            # The longest prefix that is one of our modules; else it is external.
            parts = target.split(".")
            hit = next(
                (".".join(parts[:n]) for n in range(len(parts), 0, -1)
                 if ".".join(parts[:n]) in files),
                None,
            )  # fmt: skip
            if hit is not None:
                # Importing a module runs its packages' __init__ first: edges to them too.
                pieces = hit.split(".")
                for n in range(1, len(pieces) + 1):
                    target_module = ".".join(pieces[:n])
                    if target_module in files and target_module != name:
                        internal.add(target_module)
            elif parts[0] not in PACKAGES and parts[0] not in ("bench", "tests"):
                external.add(parts[0])
            elif parts[0] in ("bench", "tests"):
                internal.add(target)
        graph.internal[name] = internal
        graph.external[name] = external
    return graph


def reachable(graph: Graph, start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in graph.internal.get(todo.pop(), ()):
            if nxt not in seen and nxt in graph.internal:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def import_cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.internal.get(v, ()):
            if w not in graph.internal:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph.internal):
        if v not in index:
            visit(v)
    return sorted(out)
