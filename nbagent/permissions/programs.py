"""What nbagent knows about the shell around programs: which variables are safe to expand or set, the
shells and interpreters, and how to scope an "always" rule (``git commit *``, ``npm run test *``).
The read-only programs and their options are in ``readonly.py``; wrappers in ``wrappers.py``."""

from __future__ import annotations

from collections.abc import Sequence

# Variables whose expansion is harmless to show (others may hold secrets such as API keys).
SAFE_VARS = frozenset(
    {"HOME", "PWD", "OLDPWD", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TERM", "PATH", "HOSTNAME",
     "RANDOM", "SECONDS", "LINENO", "BASH_VERSION", "UID", "EUID", "PPID", "OSTYPE", "TMPDIR", "VIRTUAL_ENV",
     "BASHPID", "HOSTTYPE", "MACHTYPE", "COLUMNS", "LINES", "SHLVL", "EPOCHSECONDS", "EPOCHREALTIME",
     "?", "#", "$", "!", "@", "*", "-", "_", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
)  # fmt: skip
# Variables that hold numbers the shell sets itself: safe in arithmetic.
INT_VARS = frozenset(
    {"RANDOM", "SECONDS", "LINENO", "UID", "EUID", "PPID", "BASHPID", "SHLVL", "EPOCHSECONDS", "COLUMNS",
     "LINES", "?", "#", "$", "!"}
)  # fmt: skip

# Setting these for one command (X=1 cmd, env X=1 cmd) is harmless; any other variable may change what
# the program runs or loads, so it asks.
SAFE_ASSIGN = frozenset(
    {"LANG", "LANGUAGE", "TZ", "TERM", "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "CLICOLOR",
     "CLICOLOR_FORCE", "CI", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "PYTHONIOENCODING",
     "PYTHONUTF8", "PYTHONFAULTHANDLER", "NODE_ENV", "RUST_BACKTRACE", "RUST_LOG", "CUDA_VISIBLE_DEVICES",
     "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
     "TOKENIZERS_PARALLELISM", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "MPLBACKEND",
     "SOURCE_DATE_EPOCH", "TQDM_DISABLE", "WANDB_MODE", "WANDB_SILENT", "GIT_TERMINAL_PROMPT"}
)  # fmt: skip
SAFE_ASSIGN_PREFIXES = ("LC_",)

# Assigning these, even as a shell variable, changes which program runs or what it loads.
RISKY_VARS = frozenset(
    {"PATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS0", "PS1", "PS2", "PS3", "PS4", "IFS",
     "PROMPT_COMMAND", "CDPATH", "GLOBIGNORE", "HOME", "HISTFILE", "FUNCNEST", "BASH_LOADABLES_PATH",
     "EXECIGNORE", "INPUTRC", "TMPDIR", "BASH_XTRACEFD", "BASH_COMPAT", "POSIXLY_CORRECT", "EDITOR", "VISUAL",
     "BROWSER", "CLASSPATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "KUBECONFIG",
     "GNUPGHOME", "ZDOTDIR", "MAKEFLAGS", "MFLAGS", "CC", "CXX", "LDFLAGS", "CFLAGS", "CPPFLAGS",
     "RUSTC_WRAPPER", "GOFLAGS", "SHELL", "TERMINFO", "MANPATH", "OPENSSL_CONF", "SSL_CERT_FILE",
     "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "MAIL", "MAILPATH"}
)  # fmt: skip
RISKY_PREFIXES = ("LD_", "DYLD_", "GIT_", "BASH_FUNC_", "PYTHON", "NODE_", "NPM_CONFIG_", "PERL", "RUBY",
                  "GEM_", "BUNDLE_", "XDG_", "SSH_", "DOCKER_", "PIP_", "UV_", "CONDA", "CARGO_", "LESS",
                  "R_", "JULIA_", "LUA_", "PHP", "GCONV_", "LOCPATH", "NLSPATH", "HOSTALIASES", "RES_",
                  "MALLOC_", "GLIBC_", "TCL", "TK_", "JAVA_", "MAVEN_", "GRADLE_", "SBT_", "DOTNET_",
                  "COMPOSER_", "YARN_", "PNPM_", "BUN_", "DENO_", "TF_", "AWS_", "GOOGLE_", "AZURE_")  # fmt: skip
RISKY_INFIXES = ("CONFIG", "PAGER", "ASKPASS", "EDITOR", "PROXY", "_OPTS", "_OPTIONS", "_HOME", "_PATH",
                 "_LIBRARY", "_PLUGIN", "_HOOK", "STARTUP", "PRELOAD")  # fmt: skip


def risky_var(name: str) -> bool:
    """Does setting ``name`` (exported, or as a special shell variable) change what runs?"""
    upper = name.upper()
    return (
        upper in RISKY_VARS
        or upper.startswith(RISKY_PREFIXES)
        or any(part in upper for part in RISKY_INFIXES)
        or upper.endswith("RC")  # NPMRC, INPUTRC, WGETRC: a file of settings
        or "%" in name  # BASH_FUNC_x%% exported functions
        or not name.replace("_", "a").isalnum()
    )


def safe_assign(name: str) -> bool:
    """May ``name`` be set for one command (``X=1 cmd``, ``env X=1 cmd``) without asking?"""
    return name in SAFE_ASSIGN or name.startswith(SAFE_ASSIGN_PREFIXES)


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


def git_subcommand(args: Sequence[str]) -> tuple[int, str | None]:
    """Index and name of git's subcommand, skipping global options; None if it cannot be found."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env",
                 "--super-prefix", "--list-cmds"):  # fmt: skip
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return i, a
    return i, None


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
