"""The layering rule written in README.md (Architecture), kept by reading every import."""

import ast
import gc
import pathlib
from functools import lru_cache

ROOT = pathlib.Path(__file__).resolve().parents[1] / "src" / "tokenfab"
LAYERS = [
    {"specs", "jsonsafe"},
    {"catalog"},
    {"graph", "cost"},
    {"perf"},
    {"mapping"},
    {"design", "train"},
    {"api", "deployment", "explain"},
    {"serving", "explore", "study", "validate", "report", "fleet"},
    {"cli", "__main__", "__init__"},
]
"""Bottom to top, as README.md's Architecture section states them."""
UPWARD_LAZY = {("catalog", "design")}
"""The only import that reaches up, from inside a function: a chip id may name a ChipDesign file, so
the catalog loads designs. The tiled model reads only the ChipSpec's microarch (issue 16: one
hardware description), so perf never reaches design."""
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _import_statements(body: list) -> list[ast.stmt]:
    """Every import statement in `body`, however deeply nested in functions, classes, if/try/with/for/
    match blocks. An import is a statement, so only statement bodies are searched, never the
    expressions (nine nodes in ten) that `ast.walk` would visit too."""
    found = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                found += _import_statements(inner)
    return found


@lru_cache(maxsize=1)
def _parsed() -> tuple[tuple[pathlib.Path, ast.Module, tuple[ast.stmt, ...]], ...]:
    """Every source file, parsed once for all the tests here: (path, tree, all its import statements).
    The cyclic garbage collector is paused while parsing: the ~250k nodes it would scan again and
    again doubled the time."""
    out = []
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for f in sorted(ROOT.rglob("*.py")):
            tree = ast.parse(f.read_text())
            out.append((f, tree, tuple(_import_statements(tree.body))))
    finally:
        if was_enabled:
            gc.enable()
    return tuple(out)


def _imports():
    for f, tree, nodes in _parsed():
        rel = f.relative_to(ROOT)
        pkg = rel.parts[0].removesuffix(".py")
        top = {id(n) for n in tree.body}
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tokenfab":
                parts = node.module.split(".")
                targets = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1] for a in node.names if a.name.startswith("tokenfab.")]
            else:
                continue
            for t in targets:
                if t != pkg:
                    yield str(rel), node.lineno, pkg, t, id(node) in top


def test_every_package_has_a_layer():
    names = {p.name.removesuffix(".py") for p in ROOT.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert names - {"__init__"} <= set(RANK), sorted(names - set(RANK))


def test_imports_point_down_the_layers():
    bad = []
    for where, line, src, dst, at_top in _imports():
        up = RANK[dst] > RANK[src]
        if up and (at_top or (src, dst) not in UPWARD_LAZY):
            bad.append(f"{where}:{line} {src} -> {dst}")
    assert not bad, "imports against the layering rule: " + "; ".join(bad)


def test_the_engine_imports_no_consumer():
    engine = {"graph", "perf", "mapping"}
    consumers = {"api", "deployment", "serving", "explore", "study", "validate", "report", "cli", "cost", "fleet", "train"}
    hits = [f"{w}:{l}" for w, l, s, d, _ in _imports() if s in engine and d in consumers]
    assert not hits, hits


def _module_graph(lazy: bool) -> dict[str, set[str]]:
    """tokenfab module -> the tokenfab modules it imports (at module level, or anywhere with `lazy`).
    `from pkg import submodule` depends on the submodule only: its package is already importing."""
    name = lambda f: ".".join(("tokenfab",) + f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")  # noqa: E731
    mods = {name(f) for f, _, _ in _parsed()}
    graph = {}
    for f, tree, nodes in _parsed():
        mod = name(f)
        deps = set()
        for node in (nodes if lazy else tree.body):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tokenfab"):
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods]
                deps.update(subs)
                if len(subs) < len(node.names):
                    deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("tokenfab"))
        graph[mod] = {d for d in deps if d in mods and d != mod}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_itself_back():
    """No import circle at module level anywhere, and none even through lazy imports except the
    one inside the api layer (api builds Estimates that deployment and explain fill in)."""
    assert _cycles(_module_graph(lazy=False)) == []
    allowed = [["tokenfab.api", "tokenfab.deployment", "tokenfab.explain"]]
    assert [c for c in _cycles(_module_graph(lazy=True)) if c not in allowed] == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_finder_finds_every_import_ast_walk_finds():
    src = """
import a
if x:
    import b
else:
    from c import d
try:
    import e
except ImportError:
    import f
else:
    import g
finally:
    import h
for i in y:
    import j
else:
    import k
while z:
    import l
with m:
    import n
class O:
    import p
    def q(self):
        import r
        async def s():
            import t
match u:
    case 1:
        import v
"""
    tree = ast.parse(src)
    walked = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    found = _import_statements(tree.body)
    assert len(found) == len(walked) == 15 and {id(n) for n in found} == {id(n) for n in walked}
