#!/usr/bin/env python3
"""Fail when the files of a crate import each other in a circle.

A circle (file A uses B, B uses A, possibly through others) means neither
file can be read or tested alone. Each crate's files must form layers: a file
may use the files below it, never one that (directly or through others) uses
it back. rust-analyzer's architecture document asks the same of its crates.

How an edge is found: every `crate::a::b::Item` or `super::Item` path in a
file's non-test code (in `use` lines and inline) is resolved to the file that
*defines* `Item`, following `pub use` re-exports, so a `lib.rs` or `mod.rs`
that only re-exports is not a hub that joins everything. `mod x;` lines are
not edges. Code under `#[cfg(test)]` is left out: a test may reach anywhere.

Why not cargo-modules: it builds rust-analyzer (minutes of compile on a fresh
machine) to answer a question a page of text matching answers for this
codebase, whose imports are plain paths.

The same pass also fails on a non-test function longer than 120 lines: a
function that long does more than one thing and cannot be tested piecewise.

Usage: check-house.py [CRATE_DIR...]   (default: every workspace
member with a src/ directory). Exit status 1 when a circle exists; each
circle is printed as `crate: a.rs -> b.rs -> a.rs`.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def members():
    text = open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8").read()
    block = re.search(r"members\s*=\s*\[(.*?)\]", text, re.S)
    names = re.findall(r'"([^"]+)"', block.group(1)) if block else []
    return [n for n in names if os.path.isdir(os.path.join(ROOT, n, "src"))]


def strip_comments_and_strings(text):
    """Blank out comments and string literals, keeping line structure."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        raw = re.match(r'r(#*)"', text[i : i + 10]) if c == "r" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) else None
        if raw:
            close = '"' + raw.group(1)
            j = text.find(close, i + len(raw.group(0)))
            j = n if j < 0 else j + len(close)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
            continue
        if c == "'":
            # a char literal ('x', '\n', '\u{..}'), not a lifetime ('a)
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i : i + 12])
            if m:
                out.append("' '")
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def strip_test_code(text):
    """Drop items under #[cfg(test)] (a `mod tests { .. }` or one item)."""
    out = []
    i = 0
    pattern = re.compile(r"#\[cfg\(test\)\]")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i : m.start()])
        j = m.end()
        # the item ends at its matching close brace, or at ';' if none opens first
        depth = 0
        while j < len(text):
            ch = text[j]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    j += 1
                    break
            elif ch == ";" and depth == 0:
                j += 1
                break
            j += 1
        out.append("\n" * text.count("\n", m.start(), j))
        i = j
    return "".join(out)


class Crate:
    def __init__(self, directory):
        self.dir = directory
        self.src = os.path.join(ROOT, directory, "src")
        self.files = {}  # module path tuple -> relative file
        self.text = {}  # relative file -> cleaned text
        for base, _, names in os.walk(self.src):
            for name in names:
                if not name.endswith(".rs"):
                    continue
                full = os.path.join(base, name)
                rel = os.path.relpath(full, self.src)
                parts = rel[:-3].split(os.sep)
                if parts[-1] in ("lib", "main", "mod"):
                    parts = parts[:-1]
                if len(parts) == 1 and rel == "main.rs" and () in self.files:
                    continue  # a binary beside a library: its own root
                self.files[tuple(parts)] = rel
                raw = open(full, encoding="utf-8").read()
                self.text[rel] = strip_test_code(strip_comments_and_strings(raw))
        self.module_of = {rel: mod for mod, rel in self.files.items()}
        self.inline_modules()
        self.exports = {mod: self.reexports(mod) for mod in self.files}

    def inline_modules(self):
        """`mod name { .. }` blocks inside a file resolve to that file."""
        self.inline = {}
        for mod, rel in list(self.files.items()):
            for m in re.finditer(r"\bmod\s+([a-z_][a-z0-9_]*)\s*\{", self.text[rel]):
                self.inline[mod + (m.group(1),)] = rel

    def file_for(self, module):
        return self.files.get(module) or self.inline.get(module)

    def reexports(self, module):
        """Map an item name re-exported by `module` to the path it names."""
        rel = self.files[module]
        found = {}
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", self.text[rel]):
            for path in expand_use(m.group(1)):
                absolute = self.absolute(module, path)
                if absolute is None:
                    continue
                name = path[-1]
                if name == "*":
                    found.setdefault("*", []).append(absolute[:-1])
                else:
                    alias = re.match(r"(.+?)\s+as\s+(\w+)$", name)
                    if alias:
                        absolute = absolute[:-1] + (alias.group(1),)
                        name = alias.group(2)
                    found[name] = absolute
        return found

    def absolute(self, module, path):
        """Turn a use path into a path from the crate root (None: external)."""
        head = path[0]
        if head == "crate":
            return tuple(path[1:])
        if head == "self":
            return module + tuple(path[1:])
        if head == "super":
            base = module
            while path and path[0] == "super":
                base = base[:-1]
                path = path[1:]
            return base + tuple(path)
        if module + (head,) in self.files or module + (head,) in self.inline:
            return module + tuple(path)  # `use child::Item` from a parent
        return None

    def resolve(self, path, seen=None):
        """The file defining the item at `path` (a tuple from the crate root)."""
        seen = seen or set()
        if path in seen:
            return None
        seen.add(path)
        # the longest prefix that is a module
        for cut in range(len(path), -1, -1):
            module = tuple(path[:cut])
            rel = self.file_for(module)
            if rel is None:
                continue
            rest = path[cut:]
            if not rest or module not in self.exports:
                return rel
            exported = self.exports[module]
            if rest[0] in exported:
                return self.resolve(exported[rest[0]] + tuple(rest[1:]), seen)
            if self.defines(rel, rest[0]):
                return rel
            for glob in exported.get("*", []):
                target = self.resolve(glob + tuple(rest), seen)
                if target is not None:
                    return target
            return rel
        return None

    def defines(self, rel, name):
        return re.search(
            r"\b(?:fn|struct|enum|trait|type|const|static|macro_rules!|union)\s+" + re.escape(name) + r"\b",
            self.text[rel],
        ) is not None

    def edges(self):
        graph = {rel: set() for rel in self.text}
        for rel, text in self.text.items():
            module = self.module_of.get(rel)
            if module is None:
                continue
            paths = []
            for m in re.finditer(r"\buse\s+([^;]+);", text):
                paths.extend(expand_use(m.group(1)))
            for m in re.finditer(r"\b((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
                paths.append(m.group(1).split("::"))
            for path in paths:
                if path[-1] == "*":
                    path = path[:-1]
                path = [re.sub(r"\s+as\s+\w+$", "", p) for p in path]
                absolute = self.absolute(module, path)
                if absolute is None:
                    continue
                target = self.resolve(absolute)
                if target and target != rel:
                    graph[rel].add(target)
        return graph


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> [[a,b],[a,c,d],[a,c,e]]."""
    tree = re.sub(r"\s+", " ", tree).strip()

    def split_top(s):
        parts, depth, cur = [], 0, ""
        for ch in s:
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
        return [p.strip() for p in parts if p.strip()]

    def walk(prefix, s):
        s = s.strip()
        brace = s.find("{")
        if brace < 0:
            return [prefix + [p.strip() for p in s.split("::") if p.strip()]]
        head = [p for p in s[:brace].split("::") if p.strip()]
        inner = s[brace + 1 : s.rfind("}")]
        result = []
        for part in split_top(inner):
            if part == "self":
                result.append(prefix + head)
            else:
                result.extend(walk(prefix + head, part))
        return result

    return [p for p in walk([], tree) if p]


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def one_circle(graph, component):
    """A shortest circle through the component's first file, for the message."""
    members_ = set(component)
    start = component[0]
    frontier, parent = [start], {start: None}
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return list(reversed(path)) + [start]
                if w in members_ and w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    return component


MAX_FUNCTION_LINES = 120


def long_functions(crate):
    """(lines, file, name, line) for each non-test function over the limit.

    Lines are counted from `fn` to the closing brace, comments included
    (they are blanked, not removed, so the count is the one a reader sees).
    """
    found = []
    for rel, text in sorted(crate.text.items()):
        for m in re.finditer(r"\bfn\s+(\w+)", text):
            j = m.end()
            while j < len(text) and text[j] not in "{;":
                j += 1
            if j >= len(text) or text[j] == ";":
                continue  # a declaration without a body
            depth, k = 0, j
            while k < len(text):
                if text[k] == "{":
                    depth += 1
                elif text[k] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                k += 1
            lines = text.count("\n", m.start(), k) + 1
            if lines > MAX_FUNCTION_LINES:
                found.append((lines, rel, m.group(1), text.count("\n", 0, m.start()) + 1))
    return found


def self_test():
    """The check must fail on what it forbids: a made-up crate with a circle
    through a re-export, a long function, a test-only back edge (allowed)
    and a `mod.rs` that only re-exports (not a hub)."""
    import tempfile

    files = {
        "lib.rs": "mod a;\nmod b;\nmod facade;\npub use a::Alpha;\n",
        "a.rs": "use crate::Beta;\npub struct Alpha;\nfn f(_: Beta) {}\n",
        "b.rs": "pub struct Beta;\nfn g() -> crate::Alpha { crate::a::Alpha }\n",
        "facade/mod.rs": "mod inner;\npub use inner::Gamma;\n",
        "facade/inner.rs": "use super::Gamma as _G;\npub struct Gamma;\n"
        + "fn long() {\n" + "    let _ = 1;\n" * 130 + "}\n"
        + "#[cfg(test)]\nmod tests {\n    use crate::facade::Gamma;\n}\n",
    }
    files["lib.rs"] += "pub use b::Beta;\n"
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in files.items():
            path = os.path.join(tmp, "src", rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "w", encoding="utf-8").write(text)
        crate = Crate(tmp)
        found = cycles(crate.edges())
        assert found == [["a.rs", "b.rs"]], found
        long = [(rel, name) for _, rel, name, _ in long_functions(crate)]
        assert long == [(os.path.join("facade", "inner.rs"), "long")], long
    print("self-test: the check finds a circle through a re-export and a long function")


def main(argv):
    if argv[1:] == ["--self-test"]:
        self_test()
        return 0
    crates = argv[1:] or members()
    failed = False
    for directory in crates:
        crate = Crate(directory)
        for lines, rel, name, line in long_functions(crate):
            failed = True
            print(f"{directory}/src/{rel}:{line}: fn {name} is {lines} lines (at most {MAX_FUNCTION_LINES}): split it by concern")
        graph = crate.edges()
        for component in cycles(graph):
            failed = True
            print(f"{directory}: circle among {', '.join(component)}")
            print(f"  e.g. {' -> '.join(one_circle(graph, component))}")
            for v in component:
                inside = sorted(w for w in graph[v] if w in component)
                print(f"    {v} uses {', '.join(inside)}")
    if failed:
        print("import circles (move what both sides share into a module both use) or long functions found")
        return 1
    print(f"no import circle between files and no function over {MAX_FUNCTION_LINES} lines in {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
