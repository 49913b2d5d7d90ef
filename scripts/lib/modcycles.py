#!/usr/bin/env python3
"""Module-dependency cycle check for a Rust source tree (granite's `src/`). Test code (a
`tests.rs` module, an inline `#[cfg(test)] mod tests`) is left out: it may use anything.

The rule: at every level of the module tree, the modules directly under one parent form an
acyclic graph. An edge A -> B exists when code in A (or anything below A) names B (or
anything below B) through a `crate::`, `super::` or `self::` path, in a `use` item or inline.
References between a module and its own ancestors or descendants are not edges (a child using
its parent's items, or a parent re-exporting its children, is how Rust modules are built);
what is checked is that siblings never depend on each other in a circle.

Usage: modcycles.py SRC_DIR [--graph]
Prints every cycle found (as `a -> b -> a` under its parent) and exits 1 if there is one;
prints a one-line summary and exits 0 otherwise. `--graph` prints every sibling edge too.
"""
import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_tests(text):
    """Drop an inline `#[cfg(... test ...)] mod tests { ... }` (by convention the end of a
    file): test code may use the test support (`crate::testing`) of anything."""
    m = re.search(r"#\[cfg\([^\]]*\btest\b[^\]]*\)\]\s*mod\s+tests\s*\{", text)
    return text[: m.start()] if m else text


def module_files(src):
    """Map module path tuple -> file, following mod.rs / name.rs conventions under src."""
    mods = {}
    for dirpath, _dirs, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts == ["lib"]:
                path = ()
            elif parts == ["main"]:
                continue  # the binary: not part of the library's module tree
            elif parts[-1] == "tests":
                continue  # a test module file (`mod tests;` under #[cfg(test)])
            elif parts[-1] == "mod":
                path = tuple(parts[:-1])
            else:
                path = tuple(parts)
            mods[path] = os.path.join(dirpath, f)
    return mods


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    # string literals (keep it simple: no raw strings with quotes inside)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return text


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e'] (approximate, enough for paths)."""
    tree = tree.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", tree, flags=re.S)
    if not m:
        return [tree]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    out = []
    for p in parts:
        p = p.strip()
        if not p:
            continue
        for e in expand_use_tree(p):
            out.append(prefix + e)
    return out


def references(text):
    """Every path starting with crate::, super:: or self:: in the text."""
    refs = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        for p in expand_use_tree(m.group(1)):
            p = re.sub(r"\s+as\s+" + IDENT + r"\s*$", "", p.strip())
            refs.append(p.replace(" ", "").replace("\n", ""))
    for m in re.finditer(r"\b((?:crate|super|self)(?:::(?:super|" + IDENT + r"))+)", text):
        refs.append(m.group(1))
    return refs


def resolve(cur, ref, mods):
    """The module a reference from module `cur` lands in (longest module prefix), or None."""
    segs = ref.split("::")
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base = cur
        i = 0
        while i < len(segs) and segs[i] in ("super", "self"):
            if segs[i] == "super":
                base = base[:-1]
            i += 1
        rest = segs[i:]
    else:
        return None
    path = base
    for s in rest:
        if path + (s,) in mods:
            path = path + (s,)
        else:
            break
    return path


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    src = sys.argv[1]
    show = "--graph" in sys.argv
    mods = module_files(src)
    edges = {}  # parent -> {child: set(children)}
    for cur, f in mods.items():
        with open(f, encoding="utf-8") as fh:
            text = strip_tests(strip_comments(fh.read()))
        for ref in references(text):
            tgt = resolve(cur, ref, mods)
            if tgt is None or tgt == cur:
                continue
            # lowest common ancestor
            n = 0
            while n < len(cur) and n < len(tgt) and cur[n] == tgt[n]:
                n += 1
            if n == len(cur) or n == len(tgt):
                continue  # ancestor/descendant: not an edge
            parent = cur[:n]
            a, b = cur[n], tgt[n]
            edges.setdefault(parent, {}).setdefault(a, set()).add(b)

    cycles = []
    for parent, g in sorted(edges.items()):
        # Tarjan's strongly connected components
        index, low, stack, on, comps = {}, {}, [], set(), []
        counter = [0]

        def strong(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in sorted(g.get(v, ())):
                if w not in index:
                    strong(w)
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
                    comps.append(sorted(comp))

        for v in sorted(g):
            if v not in index:
                strong(v)
        name = "crate" if not parent else "crate::" + "::".join(parent)
        if show:
            for a in sorted(g):
                print(f"{name}: {a} -> {', '.join(sorted(g[a]))}")
        for comp in comps:
            inner = {a: sorted(b for b in g.get(a, ()) if b in comp) for a in comp}
            desc = "; ".join(f"{a} -> {', '.join(bs)}" for a, bs in inner.items())
            cycles.append(f"{name}: cycle among {{{', '.join(comp)}}}: {desc}")

    nedges = sum(len(b) for g in edges.values() for b in g.values())
    if cycles:
        for c in cycles:
            print(c)
        print(f"modcycles: {len(cycles)} cycle(s) in {src} ({len(mods)} modules, {nedges} sibling edges)")
        return 1
    print(f"modcycles: no module cycle in {src} ({len(mods)} modules, {nedges} sibling edges)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
