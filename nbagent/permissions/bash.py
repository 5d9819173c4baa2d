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

__all__ = ["Analysis", "FoundCommand", "Redirect", "analyze"]


def analyze(command: str) -> Analysis:
    """Every program ``command`` would run, its redirects, and what cannot be known."""
    out = Analysis(command)
    if len(command) > MAX_CHARS:
        out.limit = f"the command is longer than {MAX_CHARS} characters, too long to analyse"
        return out
    src = command.encode("utf-8", "surrogateescape")
    tree = get_parser().parse(src)
    root = tree.root_node
    out.parse_error = root.has_error
    budget = [time.perf_counter() + MAX_SECONDS, float(MAX_NODES)]
    try:
        _Walker(src, out, budget).visit(root, Ctx())
    except RecursionError:
        out.limit = "the command nests too deeply to analyse"
    except Limit as exc:
        out.limit = str(exc)
    return out
