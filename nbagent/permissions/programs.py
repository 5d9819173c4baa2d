"""What nbagent knows about programs: the built-in read-only set, which arguments are paths, and how
to scope an "always" rule (``git commit *``, ``npm run test *``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

# Programs that never read files from their arguments (their arguments are not paths).
NO_FILE_ARGS = frozenset(
    {"echo", "printf", "true", "false", ":", "sleep", "seq", "which", "type", "whoami", "id", "uname", "pwd",
     "date", "hostname", "nproc", "test", "[", "[[", "export", "local", "declare",
     "readonly", "typeset", "unset", "read", "arch", "groups", "tty", "getconf", "locale", "uptime", "free",
     "set", "shift", "exit", "return", "break", "continue", "wait"}
)  # fmt: skip

# Variables whose expansion is harmless to show (others may hold secrets such as API keys).
SAFE_VARS = frozenset(
    {"HOME", "PWD", "OLDPWD", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TERM", "PATH", "HOSTNAME",
     "RANDOM", "SECONDS", "LINENO", "BASH_VERSION", "UID", "EUID", "PPID", "OSTYPE", "TMPDIR", "VIRTUAL_ENV",
     "?", "#", "$", "!", "@", "*", "-", "_", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
)  # fmt: skip

# Assigning these changes which program runs or what it loads.
RISKY_VARS = frozenset(
    {"PATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "PROMPT_COMMAND", "PYTHONPATH",
     "PYTHONSTARTUP", "PYTHONHOME", "NODE_OPTIONS", "NODE_PATH", "PERL5LIB", "PERL5OPT", "PERLLIB", "RUBYOPT",
     "RUBYLIB", "PAGER", "MANPAGER", "EDITOR", "VISUAL", "LESSOPEN", "LESSCLOSE", "SSH_ASKPASS", "SUDO_ASKPASS",
     "HOME", "XDG_CONFIG_HOME", "ZDOTDIR", "CDPATH", "GLOBIGNORE"}
)  # fmt: skip
RISKY_PREFIXES = ("LD_", "DYLD_", "GIT_")


def risky_var(name: str) -> bool:
    return name in RISKY_VARS or name.startswith(RISKY_PREFIXES)


SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "fish", "ash", "busybox"})
# Interpreters: with an inline-code flag they run arbitrary code (ask unless a rule allows);
# without any script they read the program from stdin, which cannot be seen.
INTERPRETERS: dict[str, frozenset[str]] = {
    "python": frozenset({"-c"}),
    "python3": frozenset({"-c"}),
    "python2": frozenset({"-c"}),
    "pypy": frozenset({"-c"}),
    "pypy3": frozenset({"-c"}),
    "node": frozenset({"-e", "-p", "--eval", "--print"}),
    "nodejs": frozenset({"-e", "-p", "--eval", "--print"}),
    "bun": frozenset({"-e", "--eval"}),
    "deno": frozenset({"eval"}),
    "perl": frozenset({"-e", "-E"}),
    "ruby": frozenset({"-e"}),
    "php": frozenset({"-r"}),
    "lua": frozenset({"-e"}),
    "Rscript": frozenset({"-e"}),
    "osascript": frozenset({"-e"}),
    "tclsh": frozenset(),
    "awk": frozenset(),
    "gawk": frozenset(),
}

# acceptEdits mode also allows these file-system commands when every path is inside the project.
FS_EDIT_COMMANDS = frozenset({"mkdir", "touch", "cp", "mv"})

_SIMPLE_READ_ONLY = frozenset(
    {"cat", "head", "tail", "wc", "ls", "pwd", "echo", "printf", "which", "type", "whoami", "id", "uname",
     "file", "stat", "du", "df", "basename", "dirname", "realpath", "readlink", "true", "false", ":", "test",
     "[", "seq", "nl", "od", "hexdump", "md5sum", "sha1sum", "sha224sum", "sha256sum", "sha384sum",
     "sha512sum", "b2sum", "cksum", "cut", "tr", "cmp", "diff", "comm", "column", "fold", "paste", "tac", "rev",
     "strings", "sleep", "grep", "egrep", "fgrep", "nproc", "arch", "groups", "tty", "uptime", "free",
     "getconf", "locale", "cd", "pushd", "popd", "expand", "unexpand", "fmt", "join", "look", "numfmt",
     "expr", "lsb_release"}
)  # fmt: skip


def _is_option(arg: str, option: str) -> bool:
    """Is ``arg`` the option ``option``: exactly, with ``=value``, as an unambiguous long prefix
    (GNU tools accept ``--out`` for ``--output``), or a short flag inside a group (``-uo``)?"""
    if option.startswith("--"):
        name = arg.split("=", 1)[0]
        return len(name) > 3 and option.startswith(name)
    if arg.startswith("--") or not arg.startswith("-"):
        return False
    return option[1] in arg[1:]


def _no_opts(*bad: str) -> Callable[[Sequence[str]], str | None]:
    def check(args: Sequence[str]) -> str | None:
        for a in args:
            for b in bad:
                if _is_option(a, b):
                    return f"{b} writes files or runs programs"
        return None

    return check


def _max_positionals(n: int, why: str) -> Callable[[Sequence[str]], str | None]:
    def check(args: Sequence[str]) -> str | None:
        pos = [a for a in args if not a.startswith("-") or a == "-"]
        return why if len(pos) > n else None

    return check


def _sed(args: Sequence[str]) -> str | None:
    import re

    scripts: list[str] = []
    positional: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if (
            a in ("-i", "--in-place")
            or a.startswith("--in-place=")
            or (a.startswith("-") and not a.startswith("--") and "i" in a[1:])
        ):
            return "sed -i edits files"
        if a in ("-f", "--file") or a.startswith("--file="):
            return "sed -f runs a script file"
        if a in ("-e", "--expression"):
            if i + 1 < len(args):
                scripts.append(args[i + 1])
            i += 2
            continue
        if a.startswith("--expression="):
            scripts.append(a.split("=", 1)[1])
        elif not a.startswith("-"):
            positional.append(a)
        i += 1
    if not scripts and positional:
        scripts.append(positional[0])
    address = r"(?:\d+|\$|/[^/]*/)(?:\s*,\s*(?:\d+|\$|/[^/]*/|\+\d+))?"
    command = (
        r"(?:\s*"
        + address
        + r"?\s*!?\s*(?:[pdqQ=nNgGhHxlFz]|s/(?:[^/\\]|\\.)*/(?:[^/\\]|\\.)*/[gpiIm0-9]*)\s*)"
    )
    ok = re.compile(r"\A" + command + r"(?:;" + command + r")*;?\s*\Z")
    for s in scripts:
        if not ok.match(s):
            return "sed script may write files or run commands"
    return None


_GIT_READ_ONLY = frozenset(
    {"status", "diff", "log", "show", "rev-parse", "ls-files", "ls-tree", "blame", "shortlog", "describe",
     "cat-file", "grep", "rev-list", "merge-base", "name-rev", "count-objects", "whatchanged", "check-ignore",
     "show-ref", "for-each-ref", "version", "diff-tree", "diff-files", "diff-index", "annotate"}
)  # fmt: skip
_GIT_BRANCH_WRITES = frozenset(
    {"-d", "-D", "-m", "-M", "-c", "-C", "-f", "--delete", "--move", "--copy", "--force", "-u",
     "--set-upstream-to", "--unset-upstream", "--edit-description", "--track", "--no-track"}
)  # fmt: skip


def git_subcommand(args: Sequence[str]) -> tuple[int, str | None]:
    """Index and name of git's subcommand, skipping global options; None if it cannot be found."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env"):
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return i, a
    return i, None


def _git(args: Sequence[str]) -> str | None:
    idx, sub = git_subcommand(args)
    for a in args[:idx]:
        if a == "-c" or a.startswith(("--config-env", "--exec-path", "-c")):
            return "git -c changes configuration for this run"
    if sub is None:
        return None
    rest = list(args[idx + 1 :])
    for a in rest:
        if any(_is_option(a, o) for o in ("--output", "--ext-diff", "--open-files-in-pager", "--exec")) or (
            sub == "grep" and a.startswith("-O")
        ):
            return f"git {sub} {a} writes a file or runs a program"
    if sub in _GIT_READ_ONLY:
        return None
    if sub == "branch":
        if any(a in _GIT_BRANCH_WRITES or a.startswith(("--set-upstream-to=", "--track=")) for a in rest):
            return "git branch with that option changes branches"
        listing = any(
            a in ("-l", "--list", "--contains", "--merged", "--no-merged", "--points-at") for a in rest
        )
        if not listing and any(not a.startswith("-") for a in rest):
            return "git branch NAME creates a branch"
        return None
    if sub == "tag":
        if not rest or all(
            a in ("-l", "--list", "-n") or a.startswith(("-n", "--sort", "--format")) for a in rest
        ):
            return None
        if rest[0] in ("-l", "--list"):
            return None
        return "git tag NAME creates a tag"
    if sub == "remote":
        if not rest or rest in (["-v"], ["--verbose"]) or rest[0] == "get-url":
            return None
        return "git remote with arguments changes remotes"
    if sub == "stash":
        return None if rest[:1] in (["list"], ["show"]) else "git stash changes the working tree"
    if sub == "reflog":
        return None if not rest or rest[0] == "show" else "git reflog with a subcommand rewrites the log"
    if sub == "config":
        getters = ("--get", "--get-all", "--get-regexp", "--list", "-l", "--show-origin", "--show-scope")
        return None if rest and rest[0] in getters else "git config without --get/--list changes settings"
    if sub == "worktree":
        return None if rest[:1] == ["list"] else "git worktree changes worktrees"
    return f"git {sub} is not a read-only git command"


def _find(args: Sequence[str]) -> str | None:
    for a in args:
        if a in ("-delete", "-fprint", "-fprint0", "-fprintf", "-fls"):
            return f"find {a} writes or deletes files"
    return None


def _nothing(_: Sequence[str]) -> str | None:
    return None


def _jq(args: Sequence[str]) -> str | None:
    import re

    for a in args:
        if _is_option(a, "--from-file") or a == "-f":
            return "jq -f runs a filter from a file"
        if re.search(r"\benv\b|\$ENV|\$__prog|input_filename", a):
            return "jq can print environment variables, which may hold secrets"
    return None


_VALIDATORS: dict[str, Callable[[Sequence[str]], str | None]] = {
    "git": _git,
    "find": _find,
    "sed": _sed,
    "sort": _no_opts("-o", "--output", "--compress-program"),
    "uniq": _max_positionals(1, "uniq INPUT OUTPUT writes OUTPUT"),
    "xxd": _max_positionals(1, "xxd INPUT OUTPUT writes OUTPUT"),
    "tree": _no_opts("-o", "-R"),
    "file": _no_opts("-C", "--compile"),
    "jq": _jq,
    "rg": _no_opts("--pre"),
    "date": _no_opts("-s", "--set"),
    "hostname": _max_positionals(0, "hostname NAME changes the host name"),
    "tee": _nothing,  # its file arguments are checked as edits
    "command": _nothing,
}


def read_only_problem(program: str, args: Sequence[str]) -> str | None:
    """None if ``program args`` only reads (given that its paths are checked separately), else why not."""
    check = _VALIDATORS.get(program)
    if check is not None:
        return check(args)
    if program in _SIMPLE_READ_ONLY:
        return None
    return f"{program} is not in the read-only set"


def pattern_positions(program: str, args: Sequence[str]) -> set[int]:
    """Indices in ``args`` that are patterns or scripts, not paths (grep PATTERN, sed SCRIPT, find -name X)."""
    out: set[int] = set()
    if program in ("grep", "egrep", "fgrep", "rg", "sed", "awk", "gawk", "jq"):
        explicit = False
        for i, a in enumerate(args):
            if a in ("-e", "-f", "--regexp", "--file", "--expression") and i + 1 < len(args):
                out.add(i + 1)
                explicit = explicit or a in ("-e", "--regexp", "--expression")
        if not explicit:
            for i, a in enumerate(args):
                if i not in out and not a.startswith("-"):
                    out.add(i)
                    break
    elif program == "find":
        for i, a in enumerate(args):
            if a in ("-name", "-iname", "-path", "-ipath", "-regex", "-iregex", "-wholename", "-iwholename",
                     "-lname", "-ilname", "-printf", "-type", "-newerXY") and i + 1 < len(args):  # fmt: skip
                out.add(i + 1)
    elif program == "git":
        for i, a in enumerate(args):
            if a in (
                "-m",
                "--message",
                "-S",
                "-G",
                "--grep",
                "--author",
                "--format",
                "--pretty",
            ) and i + 1 < len(args):
                out.add(i + 1)
    return out


# How many words name the command for an "always" rule (program included).
_ARITY: dict[str, int] = {
    "git": 2, "npm": 2, "pnpm": 2, "yarn": 2, "bun": 2, "npx": 2, "pnpx": 2, "bunx": 2, "cargo": 2, "go": 2,
    "docker": 2, "podman": 2, "kubectl": 2, "helm": 2, "pip": 2, "pip3": 2, "uv": 2, "poetry": 2, "pdm": 2,
    "hatch": 2, "conda": 2, "mamba": 2, "make": 2, "just": 2, "gh": 3, "apt": 2, "apt-get": 2, "brew": 2,
    "systemctl": 2, "terraform": 2, "dotnet": 2, "mvn": 2, "gradle": 2, "rustup": 2, "nix": 2, "ruff": 2,
    "pre-commit": 2, "tox": 1, "deno": 2, "composer": 2, "bundle": 2, "rake": 2, "jupyter": 2, "pixi": 2,
}  # fmt: skip
# "npm run test", "docker compose up", "uv run pytest": one more word after these.
_THIRD_WORD = {
    ("npm", "run"), ("pnpm", "run"), ("yarn", "run"), ("bun", "run"), ("uv", "run"), ("poetry", "run"),
    ("pdm", "run"), ("hatch", "run"), ("docker", "compose"), ("conda", "run"), ("pixi", "run"), ("uv", "pip"),
    ("cargo", "run"), ("go", "run"), ("npm", "exec"), ("gh", "pr"),
}  # fmt: skip


def always_prefix(argv: Sequence[str]) -> list[str]:
    """The words an "always" rule keeps: ``git commit -m x`` -> ``[git, commit]``."""
    program = argv[0]
    args = list(argv[1:])
    if program in INTERPRETERS:
        if args and args[0] in ("-m",) and len(args) > 1:
            return [program, "-m", args[1]]
        flags = INTERPRETERS[program]
        if args and args[0] in flags:
            return [program, args[0]]
        first = next((a for a in args if not a.startswith("-")), None)
        return [program, first] if first else [program]
    words = [program]
    want = _ARITY.get(program, 1)
    if program == "git":
        idx, sub = git_subcommand(args)
        if sub is None:
            return words
        words.append(sub)
        args = args[idx + 1 :]
        want = 2
    i = 0
    while len(words) < want and i < len(args):
        a = args[i]
        i += 1
        if a.startswith("-"):
            continue
        words.append(a)
        if len(words) == 2 and (program, a) in _THIRD_WORD:
            want = 3
    return words
