"""test_layout.py - the house rules of issue 18 as a test, so that a later change cannot
quietly undo them.

- no .c or .h file under models/ or daemon/ over MAX_FILE_LINES lines;
- no function over MAX_FUNCTION_LINES lines, counted from a line that is exactly `{` to
  the next line that is exactly `}` (both included), as the house style writes functions;
- no include cycle between modules, a module being a .c and its .h (daemon/series.c and
  daemon/series.h are one module, daemon/series), the graph built from the #include "..."
  lines of both files;
- models/ includes nothing from daemon/ and none of the daemon's libraries' headers
  (FORBIDDEN_IN_MODELS);
- only the files DAEMON_H_INCLUDERS names include the daemon struct's header
  (daemon/daemon.h): every other module reaches the daemon through a narrow interface.

Each test lists every violation it finds, with file and line, and fails if there is one.
The limits and lists are below, at the top, so that adjusting a rule is one line here.
Python stdlib only; runs from any directory (the tree is found from this file's place).
"""
import fnmatch
import os
import re
import unittest

MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 120

# The trees the rules hold for, relative to the source root.
TREES = ("models", "daemon")

# Who may include daemon/daemon.h (fnmatch patterns on the path from the source root).
DAEMON_H = "daemon/daemon.h"
DAEMON_H_INCLUDERS = [
    "daemon/daemon*.c",
    "daemon/main.c",
]

# Headers models/ may not include, as written in #include <...> or "..." (fnmatch
# patterns): libuv, libyaml, SQLite, cJSON. models/ links only BLAS and libm.
FORBIDDEN_IN_MODELS = [
    "uv.h", "uv/*",
    "yaml.h",
    "sqlite3.h", "sqlite3ext.h",
    "cJSON.h", "cjson/*",
]

# Where a quoted include is looked for, after the including file's own folder: the
# include directories of ad_daemon and ad_models (daemon/CMakeLists.txt,
# models/CMakeLists.txt).
INCLUDE_DIRS = ("daemon", "models")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def sources():
    """Every .c and .h under TREES, as paths relative to ROOT, sorted."""
    out = []
    for tree in TREES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, tree)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in filenames:
                if f.endswith((".c", ".h")):
                    out.append(os.path.relpath(os.path.join(dirpath, f), ROOT))
    return sorted(out)


def read_lines(path):
    with open(os.path.join(ROOT, path), encoding="utf-8", errors="replace") as f:
        return f.read().split("\n")


def line_count(lines):
    """Lines as wc -l counts them (a last line without its newline counts too)."""
    return len(lines) - 1 if lines and lines[-1] == "" else len(lines)


def includes(path):
    """[(line number, '<' or '"', name)] of a file's #include lines."""
    out = []
    for i, l in enumerate(read_lines(path), 1):
        m = INCLUDE_RE.match(l)
        if m:
            out.append((i, m.group(1), m.group(2)))
    return out


def resolve(path, name, dirs=INCLUDE_DIRS):
    """The file (relative to ROOT) a quoted include of name in path means: the including
    file's folder first, then dirs; None when it is none of the tree's files (generated
    code, a system header)."""
    for d in (os.path.dirname(path),) + tuple(dirs):
        cand = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(os.path.join(ROOT, cand)):
            return cand
    return None


def module_of(path):
    """daemon/series.c and daemon/series.h -> daemon/series. A module's private header
    (<module>_impl.h: what the files of a split module share, included by them only) is
    part of the module: models/detector_impl.h -> models/detector."""
    base = os.path.splitext(path)[0]
    if path.endswith("_impl.h"):
        base = base[: -len("_impl")]
    return base


def functions(lines):
    """[(first line number, length, name)] of the blocks from a line that is exactly '{'
    to the next line that is exactly '}'."""
    out = []
    start = None
    for i, l in enumerate(lines):
        if l == "{":
            start = i
        elif l == "}" and start is not None:
            name = "?"
            for j in range(start - 1, max(start - 8, -1), -1):
                m = re.search(r"([A-Za-z_]\w*)\s*\(", lines[j])
                if m and re.match(r"[A-Za-z_]", lines[j]):
                    name = m.group(1)
                    break
            out.append((start + 1, i - start + 1, name))
            start = None
    return out


def include_graph(files):
    """{module: {module it includes: (file, line) of the first such include}}."""
    graph = {}
    for f in files:
        m = module_of(f)
        graph.setdefault(m, {})
        for line, kind, name in includes(f):
            if kind != '"':
                continue
            target = resolve(f, name)
            if target is None:
                continue
            t = module_of(target)
            if t != m:
                graph[m].setdefault(t, (f, line))
                graph.setdefault(t, {})
    return graph


def shortest_cycle(graph, inside, first):
    """A shortest cycle from first back to first through modules in inside (breadth-first
    search), as [first, ..., first], or None."""
    prev, frontier = {first: None}, [first]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == first:
                    path = []
                    while v is not None:
                        path.append(v)
                        v = prev[v]
                    return path[::-1] + [first]
                if w in inside and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return None


def cycles(graph):
    """The include cycles: for each strongly connected component of more than one module
    (Tarjan), a shortest cycle through each of its modules, duplicates left out:
    [(component, [m0, m1, ..., m0])], sorted."""
    index, low, on, stack, comps = {}, {}, set(), [], []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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

    for v in sorted(graph):
        if v not in index:
            strong(v)
    out, seen = [], set()
    for comp in comps:
        for m in comp:
            path = shortest_cycle(graph, set(comp), m)
            ring = path[:-1]
            k = ring.index(min(ring))
            ring = tuple(ring[k:] + ring[:k])
            if ring not in seen:
                seen.add(ring)
                out.append((comp, list(ring) + [ring[0]]))
    return sorted(out)


def describe_cycle(graph, comp, path):
    steps = []
    for a, b in zip(path, path[1:]):
        f, line = graph[a][b]
        steps.append("%s -> %s (%s:%d)" % (a, b, f, line))
    return "cycle " + " -> ".join(path) + ":\n      " + "\n      ".join(steps)


class Layout(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.files = sources()
        assert cls.files, "no sources under %s in %s" % (TREES, ROOT)

    def report(self, what, violations):
        if violations:
            self.fail("%d %s:\n  %s" % (len(violations), what, "\n  ".join(violations)))

    def test_file_lines(self):
        bad = []
        for f in self.files:
            n = line_count(read_lines(f))
            if n > MAX_FILE_LINES:
                bad.append("%s: %d lines (limit %d)" % (f, n, MAX_FILE_LINES))
        self.report("files over %d lines" % MAX_FILE_LINES, bad)

    def test_function_lines(self):
        bad = []
        for f in self.files:
            for line, n, name in functions(read_lines(f)):
                if n > MAX_FUNCTION_LINES:
                    bad.append("%s:%d: %s: %d lines (limit %d)" % (f, line, name, n,
                                                                   MAX_FUNCTION_LINES))
        self.report("functions over %d lines" % MAX_FUNCTION_LINES, bad)

    def test_no_include_cycles(self):
        graph = include_graph(self.files)
        found = cycles(graph)
        comps = sorted({tuple(comp) for comp, _ in found})
        self.report("include cycles between modules (%d groups of modules that include each "
                    "other: %s)" % (len(comps), "; ".join(", ".join(c) for c in comps)),
                    [describe_cycle(graph, comp, path) for comp, path in found])

    def test_models_stand_alone(self):
        bad = []
        for f in self.files:
            if not f.startswith("models/"):
                continue
            for line, kind, name in includes(f):
                if any(fnmatch.fnmatchcase(name, p) for p in FORBIDDEN_IN_MODELS):
                    bad.append("%s:%d: includes %s%s%s (not a models/ dependency)"
                               % (f, line, kind, name, ">" if kind == "<" else '"'))
                    continue
                if kind != '"':
                    continue
                target = resolve(f, name, dirs=("models", "daemon"))
                if target and not target.startswith("models/"):
                    bad.append('%s:%d: includes "%s", which is %s (models/ includes '
                               "nothing from daemon/)" % (f, line, name, target))
        self.report("forbidden includes in models/", bad)

    def test_daemon_h_includers(self):
        bad = []
        for f in self.files:
            if f == DAEMON_H or any(fnmatch.fnmatchcase(f, p) for p in DAEMON_H_INCLUDERS):
                continue
            for line, kind, name in includes(f):
                if kind == '"' and resolve(f, name) == DAEMON_H:
                    bad.append('%s:%d: includes "%s" (only %s may)'
                               % (f, line, name, ", ".join(DAEMON_H_INCLUDERS)))
        self.report("includes of %s outside its allowed files" % DAEMON_H, bad)


class Helpers(unittest.TestCase):
    """The checks themselves, on made-up input: each rule can fail."""

    def test_functions_counted_from_brace_to_brace(self):
        lines = ["static int f(void)", "{"] + ["    x;"] * 3 + ["}", "", "int g(int a,",
                                                               "      int b)", "{", "}"]
        self.assertEqual(functions(lines), [(2, 5, "f"), (10, 2, "g")])

    def test_cycle_found_and_described(self):
        graph = {"a": {"b": ("a.c", 3)}, "b": {"c": ("b.h", 5)}, "c": {"a": ("c.c", 7)},
                 "d": {"a": ("d.c", 1)}}
        found = cycles(graph)
        self.assertEqual(found, [(["a", "b", "c"], ["a", "b", "c", "a"])])
        text = describe_cycle(graph, *found[0])
        self.assertIn("a -> b -> c -> a", text)
        self.assertIn("c -> a (c.c:7)", text)
        self.assertEqual(cycles({"a": {"b": ("a.c", 1)}, "b": {}}), [])

    def test_private_header_is_its_modules(self):
        self.assertEqual(module_of("models/detector_impl.h"), "models/detector")
        self.assertEqual(module_of("models/detector_observe.c"), "models/detector_observe")
        self.assertEqual(module_of("daemon/series.h"), "daemon/series")

    def test_line_count(self):
        self.assertEqual(line_count("a\nb\n".split("\n")), 2)
        self.assertEqual(line_count("a\nb".split("\n")), 2)


if __name__ == "__main__":
    unittest.main()
