"""The layout's promises, checked from the source: the pure core imports no I/O
library, no module takes part in an import cycle (imports inside functions included),
and nothing but the entry point and tests imports the applications.

Static (ast) analysis of every module of ours, so it is fast and needs no imports.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.imports import (
    PACKAGES,
    PROJECT_ROOT,
    import_cycles,
    module_graph,
    modules_under,
    reachable,
)

# The ledger's pure log primitives (docs/architecture.md, "The ledger's layers").
LOG_PRIMITIVES = ("ledger/log",)
# The pure core: bytes, trust state and a reference time in, typed result or error out.
PURE = ("common/b64.py", "credential", *LOG_PRIMITIVES, "issuer/status_rules.py")
IO_LIBRARIES = ("sqlalchemy", "alembic", "requests", "flask", "werkzeug", "sqlite3", "psycopg")


def test_pure_core_imports_no_io_library() -> None:
    graph = module_graph(PROJECT_ROOT)
    offenders: dict[str, list[str]] = {}
    for module in modules_under(PROJECT_ROOT, PURE):
        external = {
            name.split(".")[0] for m in reachable(graph, module) for name in graph.external[m]
        }
        bad = sorted(external & set(IO_LIBRARIES))
        if bad:
            offenders[module] = bad
    assert offenders == {}


def test_no_module_takes_part_in_an_import_cycle() -> None:
    assert import_cycles(module_graph(PROJECT_ROOT)) == []


# docs/architecture.md, "Packages and the direction of imports".
MAY_IMPORT = {
    "common": set(),
    "credential": {"common"},
    "ledger": {"common", "credential"},
    "issuer": {"common", "credential", "ledger"},
    "verifier": {"common", "credential", "ledger"},
    "mobile_stub": {"common", "credential"},
    "healthbridge": {"common", "credential", "ledger", "issuer", "verifier", "mobile_stub"},
}


def test_packages_import_only_in_the_documented_direction() -> None:
    graph = module_graph(PROJECT_ROOT)
    wrong = sorted(
        f"{m} -> {t}"
        for m, targets in graph.internal.items()
        for t in targets
        if t.split(".")[0] != m.split(".")[0] and t.split(".")[0] not in MAY_IMPORT[m.split(".")[0]]
    )
    assert wrong == []


# docs/architecture.md, "The ledger's layers", in order: each imports only itself and
# the layers before it; the joint operation also reads peers through the one reader.
LEDGER_LAYERS = (
    ("log", LOG_PRIMITIVES),
    (
        "node",
        ("ledger/node",),
    ),
    ("joint", ("ledger/joint",)),
    ("clients", ("ledger/clients",)),
)
JOINT_READS_THROUGH = "ledger/clients/reader.py"


def test_ledger_layers_import_only_earlier_layers() -> None:
    graph = module_graph(PROJECT_ROOT)
    layer_of = {
        m: i
        for i, (_, paths) in enumerate(LEDGER_LAYERS)
        for m in modules_under(PROJECT_ROOT, paths)
    }
    (reader,) = modules_under(PROJECT_ROOT, (JOINT_READS_THROUGH,))
    wrong = sorted(
        f"{m} -> {t}"
        for m, i in layer_of.items()
        for t in graph.internal[m]
        if layer_of.get(t, -1) > i
        # the reader, or the package holding it (importing a module runs its package)
        and not (LEDGER_LAYERS[i][0] == "joint" and (reader + ".").startswith(t + "."))
    )
    assert wrong == []


# A script run as `python bench/x.py` has bench/ as sys.path[0]: a bench module named
# like a package (bench/ledger.py, the ledger benchmark) would be imported in its place
# unless the project root comes first. Every script puts the root first, and one named
# like a package also drops bench/ from the path before importing anything of ours.
ROOT_FIRST = "sys.path.insert(0, "
DROPS_BENCH = 'sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]'


def test_bench_imports_nothing_from_tests_and_never_shadows_a_package() -> None:
    bench = PROJECT_ROOT / "bench"
    packages = {p.name for p in PROJECT_ROOT.iterdir() if (p / "__init__.py").exists()}
    scripts = [p for p in sorted(bench.glob("*.py")) if "__main__" in p.read_text()]
    assert [p.name for p in scripts if ROOT_FIRST not in p.read_text()] == []
    shadowing = [p for p in sorted(bench.glob("*.py")) if p.stem in packages]
    assert [p.name for p in shadowing if DROPS_BENCH not in p.read_text()] == []
    graph = module_graph(PROJECT_ROOT, extra_roots=("bench",))
    from_tests = {
        m: sorted(t for t in graph.internal[m] if t.startswith("tests"))
        for m in graph.internal
        if m.startswith("bench.")
    }
    assert {m: t for m, t in from_tests.items() if t} == {}


PATH_REF = re.compile(
    r"(?<![\w./-])((?:common|credential|ledger|issuer|verifier|mobile_stub|healthbridge|tests"
    r"|bench|docs)/[\w/.-]*\w\.(?:py|md|yaml|toml|html|css|js))(?![\w/])"
)
OUTSIDE = re.compile(r"DESIGN\.md|STYLE\.md|(?<![\w.])/work/|\.\./shared/[A-Z]")


def _documents() -> list[Path]:
    docs = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
    code = [
        p
        for top in (*PACKAGES, "tests", "bench")
        for p in sorted((PROJECT_ROOT / top).rglob("*.py"))
        if p != Path(__file__).resolve()  # its own patterns name what they look for
    ]
    return docs + code


def test_docs_and_docstrings_cite_only_files_in_the_repository() -> None:
    missing: list[str] = []
    for doc in _documents():
        text = doc.read_text(encoding="utf-8")
        where = doc.relative_to(PROJECT_ROOT)
        missing += [f"{where}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
        for m in PATH_REF.finditer(text):
            if "*" in m.group(1) or "<" in m.group(1):
                continue
            if not (PROJECT_ROOT / m.group(1)).exists():
                missing.append(f"{where}: {m.group(1)}")
    assert missing == []


def test_container_image_copies_every_package() -> None:
    # A package left out of the Dockerfile imports fine here and fails in the image.
    lines = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    copied = {ln.split()[1] for ln in lines if ln.startswith("COPY ")}
    assert set(PACKAGES) - copied == set()
