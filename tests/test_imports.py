"""The package's imports run one way: no module imports (directly or through others,
at the top or inside a function, annotation-only imports under ``if TYPE_CHECKING:``
included) a module that imports it back."""

import ast
import os
import sys

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "igpo_jax")


def _module_name(path):
    rel = os.path.relpath(path, os.path.dirname(PKG))[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _exists(mod):
    base = os.path.join(os.path.dirname(PKG), *mod.split("."))
    return os.path.exists(base + ".py") or os.path.exists(os.path.join(base, "__init__.py"))


def import_graph():
    graph = {}
    for root, _, files in os.walk(PKG):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(root, f)
            me = _module_name(path)
            deps = set()
            tree = ast.parse(open(path, encoding="utf-8").read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    deps |= {a.name for a in node.names if a.name.startswith("igpo_jax")}
                elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("igpo_jax"):
                    for a in node.names:
                        sub = f"{node.module}.{a.name}"
                        deps.add(sub if _exists(sub) else node.module)
            graph[me] = {d for d in deps if d != me and _exists(d)}
    return graph


def find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None
    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycles():
    graph = import_graph()
    assert "igpo_jax.models.llada" in graph and "igpo_jax.run" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_annotation_only_imports_are_counted(tmp_path, monkeypatch):
    pkg = tmp_path / "igpo_jax"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from igpo_jax import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from igpo_jax.a import X\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", str(pkg))
    assert find_cycle(import_graph()) in (["igpo_jax.a", "igpo_jax.b", "igpo_jax.a"],
                                          ["igpo_jax.b", "igpo_jax.a", "igpo_jax.b"])


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
