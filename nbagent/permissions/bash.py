"""Shell command analysis with tree-sitter-bash: every program a command line would run.

``analyze(command)`` parses once and walks the tree, passing context (the directory, the wrappers, the
environment assignments) down rather than climbing parents. It sees through quoting (``'rm'``,
``\\rm``, ``$'rm\\0x'``), brace expansion and ``$IFS`` splitting (``{rm,-rf,x}``, ``rm${IFS}-rf``), paths
(``/bin/rm``), environment assignments (``X=1 rm``) and wrappers that run their argument (``sudo``,
``env``, ``xargs``, ``bash -c``, ``eval``, ``find -exec``, ``timeout``, ... see ``wrappers.py``). What it
cannot know (``eval "$VAR"``, ``$CMD``, ``| sh``, code hidden in data, a misread heredoc) is marked, and
so are limits (nesting, size, time). It knows nothing about rules: the policy decides.
"""

from __future__ import annotations

import os
import time

from nbagent.permissions.bash_types import (
    MAX_CHARS,
    MAX_NODES,
    MAX_SECONDS,
    Analysis,
    Ctx,
    FoundCommand,
    Limit,
    Redirect,
    get_parser,
)
from nbagent.permissions.bash_walk import _Walker
from nbagent.permissions.programs import SHELLS

MAX_SCRIPT = 256_000  # bytes of a script the analysis reads

__all__ = ["Analysis", "FoundCommand", "Redirect", "analyze"]


def analyze(command: str, root: str | None = None) -> Analysis:
    """Every program ``command`` would run, its redirects, and what cannot be known. ``root``: the
    folder it starts in, where scripts it runs are read from."""
    out = Analysis(command)
    if len(command) > MAX_CHARS:
        out.limit = f"the command is longer than {MAX_CHARS} characters, too long to analyse"
        return out
    src = command.encode("utf-8", "surrogateescape")
    tree = get_parser().parse(src)
    top = tree.root_node
    out.parse_error = top.has_error
    budget = [time.perf_counter() + MAX_SECONDS, float(MAX_NODES)]
    try:
        _Walker(src, out, budget).visit(top, Ctx())
    except RecursionError:
        out.limit = "the command nests too deeply to analyse"
    except Limit as exc:
        out.limit = str(exc)
    else:
        _scripts(out, src, budget, root)
    return out


def _scripts(out: Analysis, src: bytes, budget: list[float], root: str | None) -> None:
    """Scripts the command line runs (``bash x.sh``, ``source x``, ``python x.py``). One it also writes
    (``echo ... > x.sh; bash x.sh``) cannot be read beforehand: opaque. An existing shell script is
    read and analysed for what it runs (its programs meet the deny rules; the script still asks)."""
    mentioned: dict[str, int] = {}
    for c in out.commands:
        for word in c.argv:
            mentioned[word] = mentioned.get(word, 0) + 1
    for r in out.redirects:
        mentioned[r.target] = mentioned.get(r.target, 0) + 2
    for c in list(out.commands):
        if c.script is None or c.code:
            continue
        if mentioned.get(c.script, 0) > 1:
            c.code = True  # written, copied or moved by another part of the same command line
            continue
        if c.program not in SHELLS and c.program not in ("source", "."):
            continue
        path = c.script
        if root is not None and not os.path.isabs(path):
            base = c.cwd if c.cwd and os.path.isabs(c.cwd) else os.path.join(root, c.cwd or "")
            path = os.path.join(base, path)
        try:
            if not os.path.isfile(path) or os.path.getsize(path) > MAX_SCRIPT:
                c.code = True
                continue
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                code = fh.read()
        except OSError:
            c.code = True
            continue
        walker = _Walker(src, out, budget)
        walker.parse_nested(code, [], Ctx(c.cwd, (*c.via, f"{c.program} {c.script}"), 1), [], [],
                            f"{c.program} {c.script}", record=False)  # fmt: skip
