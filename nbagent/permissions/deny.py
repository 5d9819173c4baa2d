"""Deny rules that obfuscation cannot dodge.

A deny rule such as ``rm -rf *`` or ``git push*`` must also catch ``rm -r -f x``, ``rm --recursive
--force x``, ``rm -fr x``, ``git -c k=v push`` and ``git --git-dir=.git push``. Three checks, used
only for deny rules (they make matching wider, never narrower):

- ``match_argv``: the rule against the command's words with git's global options removed;
- ``flag_match``: the rule read as words, then flags (a set, short groups split, long names
  resolved), then operands: the command matches when it has the words, every flag, and operands that
  match;
- ``could_match``: for text the analysis cannot take apart (``python -c '...'``, ``| sh``, a parse
  error), the rule's literal pieces all appear in the deobfuscated text.
"""

from __future__ import annotations

import re
from functools import lru_cache

from nbagent.permissions.expand import deobfuscate
from nbagent.permissions.patterns import match_command

# git options that come before the subcommand, with the ones that take a value.
_GIT_GLOBAL_VALUE = ("-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env",
                     "--super-prefix", "--list-cmds", "--attr-source")  # fmt: skip
# Long flags with a short equivalent, per program, so '--recursive' and '-r' are one flag.
_ALIASES: dict[str, dict[str, str]] = {
    "rm": {"--recursive": "-r", "-R": "-r", "--force": "-f", "--dir": "-d", "--interactive": "-i", "--verbose": "-v"},
    "cp": {"--recursive": "-r", "-R": "-r", "--force": "-f", "--archive": "-a"},
    "mv": {"--force": "-f"},
    "chmod": {"--recursive": "-R"},
    "chown": {"--recursive": "-R"},
    "git": {"--force": "-f", "--delete": "-d", "--all": "-a", "--hard": "--hard"},
    "shred": {"--remove": "-u", "--zero": "-z", "--force": "-f"},
}  # fmt: skip


def strip_git_globals(argv: list[str]) -> list[str]:
    """``git -c k=v --git-dir=.git -C x push`` -> ``git push``."""
    if not argv or argv[0] != "git":
        return argv
    i = 1
    while i < len(argv):
        w = argv[i]
        if w in _GIT_GLOBAL_VALUE:
            i += 2
            continue
        if w.startswith("-") and w != "-":
            i += 1
            continue
        break
    return ["git", *argv[i:]]


@lru_cache(maxsize=1024)
def _pattern_shape(pattern: str) -> tuple[tuple[str, ...], frozenset[str], tuple[str, ...]]:
    """(leading words, flags, operand globs) of a command pattern."""
    words = pattern.split()
    lead: list[str] = []
    i = 0
    while i < len(words) and not words[i].startswith("-") and (i == 0 or not _glob(words[i])):
        lead.append(words[i])
        i += 1
    program = lead[0] if lead else ""
    flags: set[str] = set()
    operands: list[str] = []
    for w in words[i:]:
        stem = w.rstrip("*") if w.endswith("*") else w
        if stem.startswith("-") and len(stem) > 1 and not _glob(stem):
            flags |= _flags(program, stem)  # '--force*' needs the flag --force (or -f)
        else:
            operands.append(w)
    return tuple(lead), frozenset(flags), tuple(operands)


def _glob(word: str) -> bool:
    return any(c in word for c in "*?[")


def _flags(program: str, word: str) -> set[str]:
    aliases = _ALIASES.get(program, {})
    if word.startswith("--"):
        name = word.split("=", 1)[0]
        # a unique prefix of a known long option is that option (GNU getopt)
        hits = [a for a in aliases if a.startswith("--") and a.startswith(name)]
        if name not in aliases and len(hits) == 1:
            name = hits[0]
        return {aliases.get(name, name)}
    if re.fullmatch(r"-[A-Za-z]+", word):
        return {aliases.get("-" + c, "-" + c) for c in word[1:]}
    return {word}


def flag_match(pattern: str, argv: list[str]) -> bool:
    lead, flags, operands = _pattern_shape(pattern)
    if not lead or len(argv) < len(lead):
        return False
    argv = strip_git_globals(argv)
    program = argv[0]
    words = argv[1:]
    # leading words: the program, then the first non-flag words (git push, npm run x)
    got_lead = [program]
    rest: list[str] = []
    for w in words:
        if len(got_lead) < len(lead) and not w.startswith("-"):
            got_lead.append(w)
        else:
            rest.append(w)
    if len(got_lead) < len(lead) or not all(
        match_command(p, g) for p, g in zip(lead, got_lead, strict=False)
    ):
        return False
    got_flags: set[str] = set()
    got_ops: list[str] = []
    dashes = False
    for w in rest:
        if not dashes and w == "--":
            dashes = True
            continue
        if not dashes and w.startswith("-") and len(w) > 1:
            got_flags |= _flags(program, w)
        else:
            got_ops.append(w)
    if not flags <= got_flags:
        return False
    if not operands or operands == ("*",):
        return True
    return match_command(" ".join(operands), " ".join(got_ops)) or match_command(
        " ".join(operands) + " *", " ".join(got_ops)
    )


@lru_cache(maxsize=1024)
def _pieces(pattern: str) -> tuple[str, ...]:
    """The literal pieces of a pattern, longest words kept whole: ``git push*`` -> (git, push)."""
    out: list[str] = []
    for word in pattern.split():
        for piece in re.split(r"[*?]|\[[^\]]*\]", word):
            if piece and piece not in ("-", "--"):
                out.append(piece)
    return tuple(out)


def could_match(pattern: str, text: str) -> bool:
    """Could ``pattern`` match something ``text`` runs, when the analysis cannot see the program?
    Every literal piece of the rule appears in the deobfuscated text; a flag group (``-rf``) counts
    when each of its flags appears, in any group or as a long option."""
    pieces = _pieces(pattern)
    if not pieces:
        return True  # a catch-all deny ("*") matches anything
    clean = deobfuscate(text)
    program = pattern.split()[0] if pattern.split() else ""
    letters: set[str] = set()
    for tok in clean.split():
        if tok.startswith("-") and len(tok) > 1:
            letters |= _flags(program, tok)
    for piece in pieces:
        if re.search(r"(?<![A-Za-z0-9_])" + re.escape(piece) + r"(?![A-Za-z0-9_])", clean):
            continue
        if re.fullmatch(r"-[A-Za-z]+|--[A-Za-z][\w-]*", piece) and _flags(program, piece) <= letters:
            continue
        return False
    return True
