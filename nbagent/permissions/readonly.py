"""The programs nbagent runs without asking, and exactly which of their options and operands.

A command is read-only only when its program is in these tables and every option it uses is listed
as harmless (``options.py`` parses them as GNU getopt does). Each program also says what its operands
are: files it reads (checked like the ``read`` tool's paths), folders it lists, folders it reads
recursively (every file inside is checked), or plain words. Anything else is not proven: it asks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal

from nbagent.permissions.options import OptionTable, Parsed, parse_options
from nbagent.permissions.readonly_git import git_view
from nbagent.permissions.view import View

Operands = Literal["read", "list", "none"]


@dataclass(frozen=True)
class _Program:
    spec: str
    numeric: bool = False
    operands: Operands = "read"
    max_operands: int | None = None
    recursive: frozenset[str] = frozenset()  # options that make it read folders recursively
    check: Callable[[Parsed], str | None] | None = None


def _p(
    spec: str,
    operands: Operands = "read",
    *,
    numeric: bool = False,
    max_operands: int | None = None,
    recursive: frozenset[str] = frozenset(),
    check: Callable[[Parsed], str | None] | None = None,
) -> _Program:
    return _Program(spec, numeric, operands, max_operands, recursive, check)


@cache
def _table(program: str) -> OptionTable:
    spec = _PROGRAMS[program]
    return OptionTable.parse(spec.spec, numeric=spec.numeric)


_HELP = " --help --version"
_SUMS = (
    "-b -c -t -z -w --binary --check --tag --text --zero --ignore-missing --quiet --status --strict --warn"
    + _HELP
)
_LS = (
    "-a -A -b -B -c -C -d -f -F -g -G -h -H -i -k -l -L -m -n -N -o -p -q -Q -r -R -s -S -t -u -U -v -x -X"
    " -Z -1 -w= -T= -I= --all --almost-all --author --escape --block-size= --ignore-backups --color? --colour?"
    " --directory --dired --classify? --file-type --format= --full-time --group-directories-first"
    " --no-group --human-readable --si --dereference-command-line --dereference-command-line-symlink-to-dir"
    " --hide= --hyperlink? --indicator-style= --inode --ignore= --kibibytes --dereference --literal"
    " --numeric-uid-gid --hide-control-chars --show-control-chars --quote-name --quoting-style= --reverse"
    " --recursive --size --sort= --time= --time-style= --tabsize= --width= --context --zero" + _HELP
)
_GREP = (
    "-E -F -G -P -i -y -v -w -x -c -L -l -o -q -s -b -H -h -n -T -Z -z -a -I -U -r -R --no-ignore-case"
    " -e= -f=P -m= -A= -B= -C= -d= -D! --extended-regexp --fixed-strings --basic-regexp --perl-regexp"
    " --regexp= --file=P --ignore-case --invert-match --word-regexp --line-regexp --count --color?"
    " --colour? --files-without-match --files-with-matches --max-count= --only-matching --quiet --silent"
    " --no-messages --byte-offset --with-filename --no-filename --label= --line-number --line-buffered"
    " --initial-tab --unix-byte-offsets --null --null-data --after-context= --before-context= --context="
    " --text --binary-files= --devices! --directories= --exclude= --exclude-from=P --exclude-dir="
    " --include= --recursive --dereference-recursive --binary" + _HELP
)
_RG = (
    "-e= -f=P -i -s -S -v -w -x -c -l -o -q -n -N -H -I -a -b -p -U -F -P -L -u -t= -T= -g= -m= -A= -B= -C="
    " -j= -M= -r= -0 -. --regexp= --file=P --ignore-case --case-sensitive --smart-case --invert-match"
    " --word-regexp --line-regexp --count --count-matches --files-with-matches --files-without-match"
    " --only-matching --quiet --line-number --no-line-number --with-filename --no-filename --text"
    " --byte-offset --pretty --multiline --multiline-dotall --fixed-strings --pcre2 --engine= --follow"
    " --unrestricted --type= --type-not= --type-list --glob= --iglob= --max-count= --after-context="
    " --before-context= --context= --threads= --max-columns= --max-columns-preview --replace= --null"
    " --hidden --no-hidden --no-ignore --no-ignore-vcs --no-ignore-dot --no-ignore-parent --no-ignore-global"
    " --no-ignore-exclude --no-ignore-files --ignore --color= --colors= --column --no-column --heading"
    " --no-heading --json --stats --sort= --sortr= --files --max-depth= --maxdepth= --max-filesize= --vimgrep"
    " --trim --no-messages --no-config --line-buffered --block-buffered --binary --crlf --passthru"
    " --context-separator= --field-match-separator= --path-separator= --encoding= -E= --no-unicode --debug"
    " --pre! --pre-glob! -z! --search-zip! --ignore-file! --hostname-bin! --hyperlink-format="
    " --generate= --help --version"
)
_SED = (
    "-n -E -r -s -u -z --quiet --silent --regexp-extended --separate --unbuffered --null-data --posix"
    " --debug --sandbox -l= --line-length= -e= --expression= -f! --file! -i! --in-place! -c! --follow-symlinks!"
    " -b --binary" + _HELP
)
_FIND_TABLE = OptionTable.parse("-H -L -P -D= -O=")
_FIND_TESTS = frozenset(
    {"-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex", "-lname",
     "-ilname", "-type", "-xtype", "-maxdepth", "-mindepth", "-mtime", "-mmin", "-atime", "-amin", "-ctime",
     "-cmin", "-newer", "-anewer", "-cnewer", "-size", "-perm", "-user", "-group", "-uid", "-gid", "-links",
     "-inum", "-samefile", "-used", "-regextype", "-fstype", "-printf", "-context"}
)  # fmt: skip
_FIND_FLAGS = frozenset(
    {"-print", "-print0", "-ls", "-prune", "-quit", "-empty", "-true", "-false", "-readable", "-writable",
     "-executable", "-nouser", "-nogroup", "-depth", "-xdev", "-mount", "-follow", "-noleaf", "-daystart",
     "-ignore_readdir_race", "-noignore_readdir_race", "-not", "!", "(", ")", "-o", "-or", "-a", "-and", ",",
     "-help", "--help", "-version", "--version"}
)  # fmt: skip
_FIND_BAD = frozenset(
    {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls"}
)
_SED_CMD = re.compile(
    r"\s*(?:(?:\d+|\$|/(?:[^/\\\n]|\\.)*/I?)(?:\s*,\s*(?:\d+|\$|/(?:[^/\\\n]|\\.)*/I?|[+~]\d+))?)?\s*!?\s*"
    r"(?:[pdqQ=nNgGhHxlFzD]|\{|\}|s(?P<d>[/|#:,@])(?:(?!(?P=d))[^\\\n]|\\.)*(?P=d)(?:(?!(?P=d))[^\\\n]|\\.)*(?P=d)[gpiImM0-9]*)?\s*"
)


def _sed_script_ok(script: str) -> bool:
    """Print-only sed: addresses with p, d, q, =, n, N, g, G, h, H, x, l, and s/// without e or w flags."""
    # braces group commands: '1{p;q}' has the commands of '1;p;q;'
    for line in script.replace("{", ";").replace("}", ";").split("\n"):
        pos = 0
        while pos < len(line):
            m = _SED_CMD.match(line, pos)
            if m is None or m.end() == pos:
                return False
            pos = m.end()
            if pos < len(line):
                if line[pos] != ";":
                    return False
                pos += 1
            while pos < len(line) and line[pos] in "; \t":
                pos += 1
    return True


def _sed(parsed: Parsed) -> str | None:
    scripts = parsed.values("-e", "--expression")
    if not scripts:
        if not parsed.operands:
            return "sed needs a script"
        scripts = [parsed.operands[0]]
    for script in scripts:
        if not _sed_script_ok(script):
            return "the sed script may write files or run commands (only printing scripts are allowed)"
    return None


def _jq(parsed: Parsed) -> str | None:
    if not parsed.operands:
        return None
    if re.search(
        r"\benv\b|\$ENV|\$__prog|input_filename|\$__loc__|getpath|@sh|debug|stderr|input_line",
        parsed.operands[0],
    ):
        return "the jq filter can print environment variables"
    return None


def _printenv(parsed: Parsed) -> str | None:
    from nbagent.permissions.programs import SAFE_VARS

    if not parsed.operands:
        return "printenv prints the whole environment, which may hold secrets"
    unsafe = [op for op in parsed.operands if op not in SAFE_VARS]
    return f"printenv {unsafe[0]} may print a secret" if unsafe else None


def _date(parsed: Parsed) -> str | None:
    for op in parsed.operands:
        if not op.startswith("+"):
            return "date with a date argument sets the clock"
    return None


_PROGRAMS: dict[str, _Program] = {
    "cat": _p(
        "-A -b -e -E -n -s -t -T -u -v --show-all --number-nonblank --show-ends --number --squeeze-blank --show-tabs --show-nonprinting"
        + _HELP
    ),
    "head": _p(
        "-c= -n= -q -v -z --bytes= --lines= --quiet --silent --verbose --zero-terminated" + _HELP,
        numeric=True,
    ),
    "tail": _p(
        "-c= -n= -q -v -z -f -F -s= --bytes= --lines= --quiet --silent --verbose --zero-terminated --follow? --retry --sleep-interval= --pid= --max-unchanged-stats="
        + _HELP,
        numeric=True,
    ),
    "wc": _p(
        "-c -m -l -L -w --bytes --chars --lines --max-line-length --words --total= --files0-from!" + _HELP
    ),
    "nl": _p(
        "-b= -d= -f= -h= -i= -l= -n= -p -s= -v= -w= --body-numbering= --section-delimiter= --footer-numbering= --header-numbering= --line-increment= --join-blank-lines= --number-format= --no-renumber --number-separator= --starting-line-number= --number-width="
        + _HELP
    ),
    "tac": _p("-b -r -s= --before --regex --separator=" + _HELP),
    "rev": _p("-0 --zero" + _HELP),
    "od": _p(
        "-A= -j= -N= -S= -t= -v -w? -a -b -c -d -f -i -l -o -s -x --address-radix= --endian= --skip-bytes= --read-bytes= --strings? --format= --output-duplicates --width? --traditional"
        + _HELP
    ),
    "hexdump": _p("-b -c -C -d -o -x -L? -n= -s= -v -e= -f!"),
    "strings": _p(
        "-a -d -f -n= -t= -e= -w -s= -o -T= --all --data --print-file-name --bytes= --radix= --encoding= --include-all-whitespace --output-separator= --target="
        + _HELP,
        numeric=True,
    ),
    "cut": _p(
        "-b= -c= -d= -f= -n -s -z --bytes= --characters= --delimiter= --fields= --complement --only-delimited --output-delimiter= --zero-terminated"
        + _HELP
    ),
    "tr": _p("-c -C -d -s -t --complement --delete --squeeze-repeats --truncate-set1" + _HELP, "none"),
    "cmp": _p("-b -i= -l -n= -s --print-bytes --ignore-initial= --verbose --bytes= --quiet --silent" + _HELP),
    "diff": _p(
        "-i -E -Z -b -w -B -I= -a -r -N -q -s -u -U= -c -C= -y -W= -e -n -l -t -T -p -F= -x= -X=P -S= -d --ignore-case --ignore-tab-expansion --ignore-trailing-space --ignore-space-change --ignore-all-space --ignore-blank-lines --ignore-matching-lines= --text --recursive --new-file --unidirectional-new-file --brief --report-identical-files --unified? --context? --side-by-side --width= --left-column --suppress-common-lines --expand-tabs --initial-tab --show-c-function --show-function-line= --label= --exclude= --exclude-from=P --starting-file= --minimal --speed-large-files --horizon-lines= --strip-trailing-cr --color? --palette= --normal --ed --rcs --from-file=P --to-file=P --no-dereference --suppress-blank-empty --tabsize= --line-format= --old-line-format= --new-line-format= --unchanged-line-format= --old-group-format= --new-group-format= --changed-group-format= --unchanged-group-format= --ignore-file-name-case --no-ignore-file-name-case"
        + _HELP,
        recursive=frozenset({"-r", "--recursive"}),
    ),
    "comm": _p(
        "-1 -2 -3 -z --check-order --nocheck-order --output-delimiter= --total --zero-terminated" + _HELP
    ),
    "join": _p(
        "-a= -e= -i -j= -o= -t= -v= -1= -2= -z --ignore-case --check-order --nocheck-order --header --zero-terminated"
        + _HELP
    ),
    "paste": _p("-d= -s -z --delimiters= --serial --zero-terminated" + _HELP),
    "column": _p(
        "-c= -s= -t -x -n -e -J -N= -o= -R= -r= -H= -O= -E= -d -l= -L -W= --columns= --separator= --table --fillrows --json --table-columns= --output-separator= --table-right= --table-name= --table-hide= --table-order= --table-noextreme= --table-noheadings --table-wrap= --keep-empty-lines --use-spaces= --table-columns-limit= --help --version"
    ),
    "fold": _p("-b -s -w= --bytes --spaces --width=" + _HELP, numeric=True),
    "fmt": _p(
        "-c -p= -s -t -u -w= -g= --crown-margin --prefix= --split-only --tagged-paragraph --uniform-spacing --width= --goal="
        + _HELP,
        numeric=True,
    ),
    "expand": _p("-i -t= --initial --tabs=" + _HELP, numeric=True),
    "unexpand": _p("-a -t= --all --first-only --tabs=" + _HELP, numeric=True),
    "sort": _p(
        "-b -d -f -g -i -M -h -n -R -r -V -c -C -m -s -u -z -k= -t= -S= --ignore-leading-blanks --dictionary-order --ignore-case --general-numeric-sort --ignore-nonprinting --month-sort --human-numeric-sort --numeric-sort --random-sort --reverse --version-sort --sort= --check? --merge --stable --unique --zero-terminated --key= --field-separator= --buffer-size= --parallel= --debug --random-source=P -o! --output! -T! --temporary-directory! --compress-program! --files0-from! --batch-size="
        + _HELP
    ),
    "uniq": _p(
        "-c -d -D -f= -i -s= -u -w= -z --count --repeated --all-repeated? --skip-fields= --group? --ignore-case --skip-chars= --unique --zero-terminated --check-chars="
        + _HELP,
        max_operands=1,
    ),
    "md5sum": _p(_SUMS),
    "sha1sum": _p(_SUMS),
    "sha224sum": _p(_SUMS),
    "sha256sum": _p(_SUMS),
    "sha384sum": _p(_SUMS),
    "sha512sum": _p(_SUMS),
    "b2sum": _p(_SUMS + " -l= --length="),
    "cksum": _p(_SUMS + " -a= --algorithm= -l= --length= --base64 --raw --untagged --debug"),
    "grep": _p(_GREP, recursive=frozenset({"-r", "-R", "--recursive", "--dereference-recursive"})),
    "egrep": _p(_GREP, recursive=frozenset({"-r", "-R", "--recursive", "--dereference-recursive"})),
    "fgrep": _p(_GREP, recursive=frozenset({"-r", "-R", "--recursive", "--dereference-recursive"})),
    "rg": _p(_RG),
    "sed": _p(_SED, check=_sed),
    "jq": _p(
        "-c -n -r -j -a -s -S -C -M -e -h -V --compact-output --null-input --raw-input --raw-output --join-output --ascii-output --slurp --sort-keys --color-output --monochrome-output --tab --indent= --unbuffered --stream --stream-errors --seq --exit-status --arg! --argjson! --args! --jsonargs! --rawfile! --slurpfile! -f! --from-file! -L! --raw-output0 --help --version -R",
        check=_jq,
    ),
    "ls": _p(_LS, "list"),
    "dir": _p(_LS, "list"),
    "tree": _p(
        "-a -d -l -f -x -L= -R! -P= -I= --gitignore --ignore-case --matchdirs --metafirst --prune --info --infofile= --noreport --charset= --filelimit= --timefmt= -o! -q -N -Q -p -u -g -s -h --si --du -D -F --inodes --device -v -t -c -U -r --dirsfirst --filesfirst --sort= -i -A -S -n -C -X -J -H! -T= --nolinks --hintro= --houtro= --fromfile! --fromtabfile! --fflinks --help --version",
        "list",
    ),
    "du": _p(
        "-0 -a -B= -b -c -D -d= -H -h -k -L -l -m -P -S -s -t= -x -X=P --null --all --apparent-size --block-size= --bytes --total --dereference-args --max-depth= --human-readable --inodes --dereference --count-links --no-dereference --separate-dirs --si --summarize --threshold= --time? --time-style= --exclude-from=P --exclude= --one-file-system --files0-from!"
        + _HELP,
        "list",
    ),
    "stat": _p(
        "-L -f -t -c= --dereference --file-system --format= --printf= --terse --cached=" + _HELP, "list"
    ),
    "file": _p(
        "-b -c -d -E -h -i -k -l -L -N -n -p -r -s -S -v -z -Z -0 -e= -F= -P= -m=P --brief --checking-printout --exclude= --exclude-quiet= --extension --keep-going --list --dereference --no-dereference --mime --mime-type --mime-encoding --no-buffer --no-pad --print0 --preserve-date --raw --special-files --no-sandbox --uncompress --uncompress-noreport --magic-file=P --separator= -C! --compile! -f! --files-from!"
        + _HELP
    ),
    "realpath": _p(
        "-e -m -L -P -q -s -z --canonicalize-existing --canonicalize-missing --logical --physical --quiet --strip --no-symlinks --zero --relative-to= --relative-base="
        + _HELP,
        "list",
    ),
    "readlink": _p(
        "-f -e -m -n -q -s -v -z --canonicalize --canonicalize-existing --canonicalize-missing --no-newline --quiet --silent --verbose --zero"
        + _HELP,
        "list",
    ),
    "basename": _p("-a -s= -z --multiple --suffix= --zero" + _HELP, "none"),
    "dirname": _p("-z --zero" + _HELP, "none"),
    "pwd": _p("-L -P" + _HELP, "none"),
    "cd": _p("-L -P -e -@", "list"),
    "pushd": _p("-n", "list"),
    "popd": _p("-n", "none"),
    "echo": _p("-n -e -E", "none"),
    "printf": _p("-v=", "none"),
    "true": _p("", "none"),
    "false": _p("", "none"),
    ":": _p("", "none"),
    "test": _p("", "none"),
    "[": _p("", "none"),
    "sleep": _p(_HELP, "none"),
    "seq": _p("-f= -s= -w --format= --separator= --equal-width" + _HELP, "none"),
    "expr": _p(_HELP, "none"),
    "numfmt": _p(
        "-d= -z --debug --delimiter= --field= --format= --from= --from-unit= --grouping --header? --invalid= --padding= --round= --suffix= --to= --to-unit= --zero-terminated"
        + _HELP,
        "none",
    ),
    "whoami": _p(_HELP, "none"),
    "groups": _p(_HELP, "none"),
    "tty": _p("-s --silent --quiet" + _HELP, "none"),
    "id": _p(
        "-a -Z -g -G -n -r -u -z --context --group --groups --name --real --user --zero" + _HELP, "none"
    ),
    "uname": _p(
        "-a -s -n -r -v -m -p -i -o --all --kernel-name --nodename --kernel-release --kernel-version --machine --processor --hardware-platform --operating-system"
        + _HELP,
        "none",
    ),
    "arch": _p(_HELP, "none"),
    "nproc": _p("--all --ignore=" + _HELP, "none"),
    "uptime": _p("-p -s --pretty --since" + _HELP, "none"),
    "free": _p(
        "-b -k -m -g -h -l -t -w -v --bytes --kilo --mega --giga --tera --peta --kibi --mebi --gibi --tebi --pebi --human --si --lohi --total --wide --committed"
        + _HELP,
        "none",
    ),
    "locale": _p(
        "-a -m -c -k --all-locales --charmaps --category-name --keyword-name --verbose" + _HELP, "none"
    ),
    "lsb_release": _p(
        "-v -i -d -r -c -a -s -h --version --id --description --release --codename --all --short --help",
        "none",
    ),
    "which": _p("-a -s", "none"),
    "type": _p("-a -f -p -P -t", "none"),
    "date": _p(
        "-d= -I? -R -u --date= --iso-8601? --rfc-email --rfc-3339= --utc --universal --debug --resolution -r=P --reference=P -f! --file! -s! --set!"
        + _HELP,
        "none",
        check=_date,
    ),
    "hostname": _p(
        "-a -d -f -i -I -s -y -A --alias --domain --fqdn --long --ip-address --all-ip-addresses --all-fqdns --short --nis -F! --file! -b! --boot!"
        + _HELP,
        "none",
        max_operands=0,
    ),
    "read": _p("-r -s -e -a= -d= -i= -n= -N= -p= -t= -u=", "none"),
    "printenv": _p("-0 --null" + _HELP, "none", check=_printenv),
    "command": _p("-p -v -V", "none"),
    "tee": _p("-a -i -p --append --ignore-interrupts --output-error?" + _HELP, "none"),  # its files: edits
    "getconf": _p("-a", "none"),
}
# Operands that are words, not files (after the options): the first operand is a pattern or script.
_PATTERN_FIRST = frozenset({"grep", "egrep", "fgrep", "rg", "sed", "jq"})
_PATTERN_OPTIONS = ("-e", "--regexp", "-f", "--file", "--expression")
# Commands that only print or test their words: any word is harmless (expansions are checked apart).
_FREE = frozenset({"echo", "test", "[", "true", "false", ":"})
# Commands whose arguments may be anything known only at run time: they read no files.
ANY_ARGS = frozenset({"echo", "printf", "true", "false", ":", "test", "["})


def is_read_only_program(program: str) -> bool:
    return program in _PROGRAMS or program == "find"


def view(program: str, args: list[str]) -> View:
    """How ``program args`` reads, or why it is not proven read-only."""
    if program in _FREE:
        return View()  # prints or tests its words; reads no file
    if program == "git":
        return git_view(args)
    if program == "find":
        return _find(args)
    spec = _PROGRAMS.get(program)
    if spec is None:
        return View(problem=f"{program} is not in the read-only set")
    table = _table(program)
    parsed = parse_options(args, table)
    if parsed.problem:
        return View(problem=f"{program} {parsed.problem}")
    if spec.check is not None:
        problem = spec.check(parsed)
        if problem:
            return View(problem=problem)
    operands = list(parsed.operands)
    if program in _PATTERN_FIRST and operands and not parsed.has(*_PATTERN_OPTIONS):
        operands = operands[1:]
    if spec.max_operands is not None and len(operands) > spec.max_operands:
        return View(problem=f"{program} with {len(operands)} operands writes or changes something")
    out = View()
    out.reads += [v for n, v in parsed.options if v is not None and table.kind(n) == "path"]
    if spec.operands == "none":
        return out
    if program == "rg":
        out.recursive += operands or ["."]
        units = sum(a.count("u") for a in args if a.startswith("-") and not a.startswith("--"))
        out.hidden = parsed.has("--hidden", "-.", "--unrestricted") or units >= 2
        out.follow = parsed.has("-L", "--follow")
        return out
    if spec.recursive and parsed.has(*spec.recursive):
        out.recursive += operands or ["."]
        out.follow = parsed.has("-R", "--dereference-recursive")
        return out
    if spec.operands == "list":
        out.lists += operands
    else:
        out.reads += operands
    return out


def _find(args: list[str]) -> View:
    top = parse_options(args, _FIND_TABLE, stop_at_operand=True)
    if top.problem:
        return View(problem=f"find {top.problem}")
    words = top.operands
    starts: list[str] = []
    i = 0
    while i < len(words) and not (words[i].startswith("-") or words[i] in ("!", "(", ")", ",")):
        starts.append(words[i])
        i += 1
    out = View(lists=starts or ["."])
    while i < len(words):
        w = words[i]
        if w in _FIND_BAD or w.startswith(("-fprint", "-exec", "-ok")):
            return View(problem=f"find {w} runs programs or writes files")
        if w in _FIND_TESTS or re.fullmatch(r"-newer[amcBt][amcBt]", w):
            if i + 1 >= len(words):
                return View(problem=f"find {w} needs a value")
            if w in ("-newer", "-anewer", "-cnewer", "-samefile"):
                out.lists.append(words[i + 1])
            i += 2
            continue
        if w in _FIND_FLAGS:
            i += 1
            continue
        return View(problem=f"find {w} is not an expression nbagent knows to be harmless")
    return out
