"""The command blocks of a Markdown page, as the doc-command test runs them.

  ```sh          commands, run in order in one shell session (exports and cd carry over); each
                 must exit 0. A line ending in a backslash continues on the next.
  ```console     "$ COMMAND" lines, each followed by the output the page shows for it. The
                 command must exit 0 unless a line of the output shown starts with
                 "error:", "unauthorized:" or "forbidden:" and the command does not end by
                 echoing its own exit status ($?). A command
                 that only reads (mt get, curl, ...) is run again until its output matches, for
                 up to a minute: pages show the state a system reaches, not how fast.
  anything else  (yaml, text, ...) is shown, not run.

A directive in an HTML comment on the line just before a block changes how it runs (it is not
rendered, so readers never see it):
  <!-- doc-test: skip REASON -->              not run (say why)
  <!-- doc-test: background [wait-for URL] --> each command of the block runs in the background
                                               (a reader's second terminal); with wait-for, the
                                               test goes on once URL answers
  <!-- doc-test: same-as PATH -->              a block that shows a file of the repository (code in
                                               docs/architecture.md): not run; doc_code_test.py
                                               checks that it is that file, word for word
  <!-- doc-test: file PATH -->                 a block of any kind (yaml, json, ...) that shows a
                                               file the page then uses: it is written to PATH
                                               (relative to the shell's directory) when reached,
                                               so the file used is the file shown
Anywhere in a page, a setup directive is a command run before the page's blocks, in order, for
what the page assumes its reader has done (followed getting-started.md, say):
  <!-- doc-test: setup COMMAND -->

Expected output is compared line by line, token by token (runs of blanks separate tokens, so
table columns may shift). These tokens match any value of their kind: durations (5s, 3m,
1m20s, and a number before a unit token: 481 ms), times (2026-11-22T06:21:24Z, 06:21:24),
numbers of three digits or more (pids, ports), quoted numbers ("14"), UUIDs, hex digests, API
tokens (mt_ and 64 hex digits) and the count of a repeated event ("(x7 over 15s)").
A path (or a host:port) matches component by component, each by the same rules, and a sandbox
base's build directory (build-<recipe hash>-<time in base 36>) matches any other. "..." as a token
matches any number of tokens (at the end: the rest of its line); a line of just "..." matches
any number of lines.
"""
import re

FENCE = re.compile(r"^(`{3,})\s*([A-Za-z0-9_-]*)\s*$")
DIRECTIVE = re.compile(r"^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$")


class Block:
    def __init__(self, lang, lines, line_no, directive):
        self.lang = lang
        self.lines = lines
        self.line_no = line_no  # of the opening fence, 1-based
        self.directive = directive

    def commands(self):
        """sh: the logical command lines (continuations joined, comments and blanks left
        out)."""
        out, current = [], ""
        for raw in self.lines:
            line = raw.rstrip()
            if not current and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            out.append(current + line)
            current = ""
        if current:
            out.append(current)
        return out

    def transcript(self):
        """console: [(command, [expected output lines])]."""
        steps = []
        for raw in self.lines:
            line = raw.rstrip("\n")
            if line.startswith("$ "):
                steps.append([line[2:], []])
            elif steps and steps[-1][0].endswith("\\") and not steps[-1][1]:
                steps[-1][0] = steps[-1][0][:-1] + " " + line.strip()
            elif steps:
                steps[-1][1].append(line)
        return [(cmd, out) for cmd, out in steps]


def setup(markdown):
    """The page's setup commands, in order."""
    return [m.group(1)[len("setup "):] for m in map(DIRECTIVE.match, markdown.split("\n"))
            if m and m.group(1).startswith("setup ")]


def blocks(markdown):
    """The fenced blocks of `markdown`, in order."""
    out = []
    lines = markdown.split("\n")
    i = 0
    directive = None
    while i < len(lines):
        m = DIRECTIVE.match(lines[i])
        if m:
            directive = None if m.group(1).startswith("setup ") else m.group(1)
            i += 1
            continue
        f = FENCE.match(lines[i])
        if not f:
            if lines[i].strip():
                directive = None
            i += 1
            continue
        fence, lang, start = f.group(1), f.group(2), i
        body = []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        out.append(Block(lang, body, start + 1, directive))
        directive = None
        i += 1
    return out


VOLATILE = [
    re.compile(r"^\(?\d+(\.\d+)?(ms|s|m|h|d)(\d+(s|m|h))?\)?[,;:]?$"),  # durations: 5s, 1m20s
    re.compile(r"^\"?\d{4}-\d\d-\d\dT[0-9:.]+Z?\"?[,;:)]?$"),  # RFC 3339 times
    re.compile(r"^\d\d:\d\d:\d\d(\.\d+)?[,;:]?$"),  # clock times
    re.compile(r"^\d{3,}[,;:)]?$"),  # pids, ports, sizes
    re.compile(r"^\"\d+\"[,;:]?$"),  # quoted numbers: resourceVersion
    re.compile(r"^\"?[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\"?[,;:]?$"),  # UUIDs
    re.compile(r"^\"?(sha256:)?[0-9a-f]{12,}(\u2026)?\"?[,;:]?$"),  # digests
    re.compile(r"^\(x\d+$"),  # how many times an event repeated: "3s (x7 over 15s)"
    re.compile(r"^\"?mt_[0-9a-f]{64}\"?[,;]?$"),  # API tokens
]


BASE_BUILD = re.compile(r"^build-[0-9a-f]{12}-[0-9a-z]{8,12}$")
NUMBER = re.compile(r"^\(?\d+(\.\d+)?$")
UNITS = {"ms", "s", "seconds", "ms)", "s)", "ms,", "s,", "ms;", "s;"}


def _volatile_class(token):
    for i, pattern in enumerate(VOLATILE):
        if pattern.match(token):
            return i
    return None


def _token_matches(e, a):
    if e == a or (BASE_BUILD.match(e) and BASE_BUILD.match(a)):
        return True
    cls = _volatile_class(e)
    if cls is not None:
        return cls == _volatile_class(a)
    if "/" in e or ":" in e:
        ep, ap = re.split(r"([/:])", e), re.split(r"([/:])", a)
        return len(ep) == len(ap) and all(
            x == y or (BASE_BUILD.match(x) and BASE_BUILD.match(y)) or
            (x and _volatile_class(x) is not None and _volatile_class(x) == _volatile_class(y))
            for x, y in zip(ep, ap))
    return False


def line_matches(expected, actual):
    return _tokens_match(expected.split(), 0, actual.split(), 0)


def _tokens_match(e, i, a, j):
    while i < len(e):
        if e[i] == "...":
            return any(_tokens_match(e, i + 1, a, k) for k in range(j, len(a) + 1))
        if j >= len(a):
            return False
        # A duration written with a space ("in 481 ms", "in 1.5 s"), or any token by its kind.
        if (NUMBER.match(e[i]) and NUMBER.match(a[j]) and i + 1 < len(e) and j + 1 < len(a)
                and e[i + 1] in UNITS and a[j + 1] in UNITS and e[i + 1][-1] == a[j + 1][-1]):
            i += 2
            j += 2
            continue
        if not _token_matches(e[i], a[j]):
            return False
        i += 1
        j += 1
    return j == len(a)


def expects_failure(command, shown):
    """Whether the page shows `command` failing: a line of its output starts with mt's words
    for a failure, and it does not print its own exit status (`...; echo "exit $?"`, which
    exits 0)."""
    if re.search(r"echo\b[^;|&]*\$\?[^;|&]*$", command):
        return False
    return any(l.startswith(("error:", "unauthorized:", "forbidden:")) for l in shown)


def output_matches(expected_lines, actual_text):
    """Whether `actual_text` is what `expected_lines` show (see the module's doc)."""
    expected = [l for l in expected_lines]
    while expected and not expected[-1].strip():
        expected.pop()
    actual = actual_text.rstrip("\n").split("\n") if actual_text.strip() else []
    return _match(expected, 0, actual, 0)


def _match(exp, i, act, j):
    while i < len(exp):
        if exp[i].strip() == "...":
            return any(_match(exp, i + 1, act, k) for k in range(j, len(act) + 1))
        if j >= len(act) or not line_matches(exp[i], act[j]):
            return False
        i += 1
        j += 1
    return j == len(act)
