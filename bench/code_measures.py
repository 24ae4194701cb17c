"""The code measures of issue #19, read from a source tree's syntax (nothing is imported or run):
import cycles, label-frame literals, winner lookups, jury checks, orchestrators, function lengths
and the widest public signatures.

    .venv/bin/python bench/code_measures.py                      # src/llm_judge
    .venv/bin/python bench/code_measures.py /work/before/src/llm_judge > docs/figures/code-measures-before.txt

How each is counted:
- import cycles: a module graph with an edge for every ``import``/``from ... import`` anywhere in a
  module (inside functions too) to a module of the same package (``from a import b`` is an edge
  to ``a.b`` where that is a module, else to ``a``); the strongly connected components of more
  than one module are the cycles.
- ``"AB"``/``"BA"``: string constants exactly equal to either (docstrings, comments and the text
  of f-strings aside: ``grep -o '"AB"'`` counts those too).
- winner lookups: ``x["winner"]`` subscripts that read (not ``x["winner"] = ...``) and
  ``x.get("winner", ...)`` calls.
- jury checks: ``isinstance(x, Jury)`` calls (``Jury`` alone, as an attribute, or in a tuple).
- orchestrators: places that build a pool of calls: ``_Workers(...)``, ``ThreadPoolExecutor(...)``,
  ``Runner(...)`` (engine's one-thread process launcher is such a call too, and is listed).
- function length: from the ``def`` line to the function's last line (decorators aside), every
  function and method, nested ones included; p90 is the nearest rank.
- parameters: every parameter but ``self``/``cls`` (``*args`` and ``**kwargs`` count one each) of
  public functions (no leading underscore on the function or on its class).
Left out: anything that needs the code to run (what a dynamic import loads, call graphs).
"""

from __future__ import annotations

import argparse
import ast
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ORCHESTRATORS = ("_Workers", "ThreadPoolExecutor", "Runner")


@dataclass
class Module:
    """One module's syntax and the counts read from it."""

    name: str
    path: Path
    tree: ast.Module
    imports: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)


def module_name(root: Path, path: Path) -> str:
    """``root/backends/llamacpp.py`` -> ``llm_judge.backends.llamacpp`` (root's folder name first)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load(root: Path) -> dict[str, Module]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(root, path)
        modules[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return modules


def _base(mod: Module, node: ast.ImportFrom) -> str:
    """The module a ``from X import ...`` names, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    package = mod.name.split(".") if mod.path.name == "__init__.py" else mod.name.split(".")[:-1]
    package = package[:len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def imported(mod: Module, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The package's modules one import statement names."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    base = _base(mod, node)
    out = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
    if len(out) < len(node.names) and base in known:
        out.add(base)
    return out


def _str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _callee(node: ast.Call) -> str:
    func = node.func.value if isinstance(node.func, ast.Subscript) else node.func  # Runner[str](...)
    if isinstance(func, ast.Name):
        return func.id
    return f".{func.attr}" if isinstance(func, ast.Attribute) else ""


def _names_jury(node: ast.AST) -> bool:
    if isinstance(node, ast.Tuple):
        return any(_names_jury(e) for e in node.elts)
    return (isinstance(node, ast.Name) and node.id == "Jury") or (isinstance(node, ast.Attribute) and node.attr == "Jury")


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring constants (not counted as literals)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and _str(first.value) is not None:
                out.add(id(first.value))
    return out


def count_call(counts: Counter[str], node: ast.Call) -> None:
    callee = _callee(node)
    if callee == ".get" and node.args and _str(node.args[0]) == "winner":
        counts["winner"] += 1
    if callee == "isinstance" and len(node.args) == 2 and _names_jury(node.args[1]):
        counts["jury"] += 1
    if callee in ORCHESTRATORS or callee.lstrip(".") in ORCHESTRATORS:
        counts["orchestrators"] += 1
        counts[f"orchestrator {callee.lstrip('.')}"] += 1


def scan(mod: Module, known: set[str]) -> None:
    """Fill a module's imports and counts from its syntax tree."""
    docs = _docstrings(mod.tree)
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            mod.imports |= imported(mod, node, known) - {mod.name}
        elif isinstance(node, ast.Constant) and node.value in ("AB", "BA") and id(node) not in docs:
            mod.counts["AB/BA"] += 1
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _str(node.slice) == "winner":
            mod.counts["winner"] += 1
        elif isinstance(node, ast.Call):
            count_call(mod.counts, node)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(out)


@dataclass(frozen=True)
class Function:
    qualname: str
    lines: int
    params: int
    public: bool


def functions(mod: Module) -> list[Function]:
    """Every function and method of a module, nested ones included."""
    out: list[Function] = []

    def visit(node: ast.AST, prefix: str, public: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", public and not child.name.startswith("_"))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                a = child.args
                params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs] + [p.arg for p in (a.vararg, a.kwarg) if p]
                params = [p for p in params if p not in ("self", "cls")]
                is_public = public and not child.name.startswith("_")
                out.append(Function(f"{mod.name}.{prefix}{child.name}", (child.end_lineno or child.lineno) - child.lineno + 1,
                                    len(params), is_public))
                visit(child, f"{prefix}{child.name}.", is_public)
            else:
                visit(child, prefix, public)

    visit(mod.tree, "", True)
    return out


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def per_module(modules: dict[str, Module], key: str) -> list[str]:
    hits = {m.name: m.counts[key] for m in modules.values() if m.counts[key]}
    total = sum(hits.values())
    lines = [f"{total} in {len(hits)} modules"]
    return lines + [f"  {n:4d}  {name}" for name, n in sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))]


def report(root: Path) -> str:
    """Every measure of the tree at ``root``, as text."""
    modules = load(root)
    known = set(modules)
    for mod in modules.values():
        scan(mod, known)
    found = cycles({m.name: m.imports for m in modules.values()})
    funcs = [f for m in modules.values() for f in functions(m)]
    lengths = [f.lines for f in funcs]
    widest = sorted((f for f in funcs if f.public), key=lambda f: (-f.params, f.qualname))[:5]
    out = [f"code measures of {root} ({len(modules)} modules, {sum(len(m.imports) for m in modules.values())} "
           "internal import edges)", "",
           f"import cycles: {len(found)}"] + [f"  {' <-> '.join(c)}" for c in found]
    for title, key in (('"AB"/"BA" string literals', "AB/BA"), ('["winner"] / .get("winner") lookups', "winner"),
                       ("isinstance(..., Jury)", "jury"), ("orchestrators (pools built: _Workers(, ThreadPoolExecutor(, Runner()",
                                                           "orchestrators")):
        out += ["", f"{title}: " + "\n".join(per_module(modules, key))]
    kinds: Counter[str] = Counter()
    for m in modules.values():
        kinds.update({k.split(" ", 1)[1]: n for k, n in m.counts.items() if k.startswith("orchestrator ")})
    out.append("  by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    out += ["", f"function length (lines, {len(lengths)} functions and methods): median {statistics.median(lengths):g}, "
            f"p90 {nearest_rank(lengths, 0.9)}, max {max(lengths)} "
            f"({next(f.qualname for f in funcs if f.lines == max(lengths))})",
            "", "widest public functions (parameters):"]
    out += [f"  {f.params:4d}  {f.qualname}" for f in widest]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default="src/llm_judge", help="the package folder (default: src/llm_judge)")
    print(report(Path(parser.parse_args().root)), end="")


if __name__ == "__main__":
    main()
