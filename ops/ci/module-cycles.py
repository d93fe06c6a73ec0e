#!/usr/bin/env python3
"""Fails when modules in different folders of one host crate import each other in a cycle.

Cargo already refuses cycles between crates; inside a crate nothing does. This reads every `.rs`
file of each crate under host/ (tests, benches and fixtures excepted), maps it to its module path,
collects the `crate::a::b` paths it names outside comments (`use` lines and inline paths alike,
`#[cfg(test)]` modules excepted), and reports every strongly connected component of that graph
that spans more than one folder. Usage: `python3 ops/ci/module-cycles.py` from the repository root.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRATES = [ROOT / "host" / d / "src" for d in ("core", "loader", "services", "triggers", "platforms")] + [ROOT / "host" / "src"]


def module_of(src: pathlib.Path, f: pathlib.Path) -> tuple:
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def code_without_tests(text: str) -> str:
    """The text without comments and without `#[cfg(test)] mod ... { ... }` blocks."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def check(src: pathlib.Path) -> list:
    files = {module_of(src, f): f for f in src.rglob("*.rs")}
    modules = set(files)
    edges = {m: set() for m in modules}
    for m, f in files.items():
        text = code_without_tests(f.read_text())
        paths = re.findall(r"\bcrate((?:::\w+)+)", text)
        for use_group in re.findall(r"\buse\s+crate::\{([^;]*)\}", text):
            paths += ["::" + p.strip().replace(" ", "") for p in use_group.split(",")]
        for p in paths:
            parts = tuple(x for x in p.split("::") if x)
            target = max((parts[:k] for k in range(len(parts), 0, -1) if parts[:k] in modules), key=len, default=())
            if target and target != m:
                edges[m].add(target)
        # `super::x` from a file names its parent's module x.
        parent = m[:-1] if files[m].name not in ("mod.rs",) else m[:-1]
        for p in re.findall(r"\bsuper((?:::\w+)+)", text):
            parts = parent + tuple(x for x in p.split("::") if x)
            target = max((parts[:k] for k in range(len(parts), 0, -1) if parts[:k] in modules), key=len, default=())
            if target and target != m:
                edges[m].add(target)
    # Tarjan's strongly connected components.
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
            comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in modules:
        if v not in index:
            visit(v)
    bad = []
    for comp in comps:
        folders = {files[m].parent for m in comp}
        if len(folders) > 1:
            bad.append(sorted(str(files[m].relative_to(ROOT)) for m in comp))
    return bad


def main() -> int:
    failed = False
    for src in CRATES:
        for comp in check(src):
            failed = True
            print(f"import cycle across folders: {' <-> '.join(comp)}")
    if not failed:
        print(f"no import cycle across folders in {len(CRATES)} host crates")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
