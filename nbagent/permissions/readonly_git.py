"""git's read-only subcommands and their options (the tables' language: ``options.py``)."""

from __future__ import annotations

import os
from functools import cache

from nbagent.permissions.options import OptionTable, parse_options
from nbagent.permissions.view import View

_DIFF_OPTS = (
    " -p -u -U= -W= -z -b -w -a -q -s -R --stat? --numstat --shortstat --dirstat? --name-only --name-status"
    " --summary --patch --no-patch --raw --patch-with-raw --patch-with-stat --compact-summary --full-index"
    " --binary --abbrev? --unified= --color? --no-color --color-words? --color-moved? --word-diff?"
    " --word-diff-regex= --ignore-space-change --ignore-all-space --ignore-blank-lines --ignore-cr-at-eol"
    " --ignore-space-at-eol --ignore-matching-lines= --minimal --patience --histogram --diff-algorithm="
    " --indent-heuristic --no-indent-heuristic --inter-hunk-context= --function-context --find-renames?"
    " --find-copies? --find-copies-harder --no-renames --relative? --no-relative --diff-filter= -M? -C? -B?"
    " -D -l= -S= -G= --pickaxe-all --pickaxe-regex -O=P --text --src-prefix= --dst-prefix= --no-prefix"
    " --line-prefix= --submodule? --ita-invisible-in-index --cached --staged --merge-base --check"
    " --exit-code --quiet --no-ext-diff --textconv --no-textconv --ignore-submodules? --ws-error-highlight="
    " --output! --ext-diff! --output-indicator-new= --output-indicator-old= --output-indicator-context="
    " --anchored= --rotate-to= --skip-to= --default-prefix --no-index"
)
_LOG_OPTS = _DIFF_OPTS + (
    " -n= --max-count= --skip= --since= --after= --until= --before= --author= --committer= --grep="
    " --all-match --invert-grep --regexp-ignore-case -i -E -F -P --basic-regexp --extended-regexp"
    " --fixed-strings --perl-regexp --merges --no-merges --min-parents= --max-parents= --first-parent --all"
    " --branches? --tags? --remotes? --glob= --exclude= --reflog --single-worktree --ignore-missing --bisect"
    " --stdin! --cherry-mark --cherry-pick --left-only --right-only --cherry --walk-reflogs -g --merge"
    " --boundary --simplify-by-decoration --full-history --dense --sparse --simplify-merges --ancestry-path?"
    " --date-order --author-date-order --topo-order --reverse --no-walk? --do-walk --pretty? --format="
    " --abbrev-commit --no-abbrev-commit --oneline --encoding= --expand-tabs? --no-expand-tabs --notes?"
    " --no-notes --show-notes? --show-signature --relative-date --date= --parents --children --left-right"
    " --graph --show-linear-break? --decorate? --no-decorate --decorate-refs= --decorate-refs-exclude="
    " --source --use-mailmap --mailmap --full-diff --log-size -L= --follow -m -c --cc --dd --remerge-diff"
    " --diff-merges= --no-diff-merges --show-pulls --clear-decorations --count"
)
_GIT_GLOBAL = (
    "-C= --no-pager -P --no-optional-locks --literal-pathspecs --glob-pathspecs --noglob-pathspecs"
    " --icase-pathspecs --no-replace-objects --no-lazy-fetch --no-advice --version --help -v -h"
    " -c! --config-env! --git-dir! --work-tree! --exec-path --namespace! --bare! -p! --paginate!"
    " --super-prefix! --html-path --man-path --info-path --list-cmds="
)
_GIT: dict[str, str] = {
    "status": "-s -b -u? -z -v --short --branch --porcelain? --long --verbose --show-stash --ahead-behind"
    " --no-ahead-behind --untracked-files? --ignored? --ignore-submodules? --column? --no-column"
    " --renames --no-renames --find-renames? --null",
    "diff": _DIFF_OPTS,
    "log": _LOG_OPTS,
    "whatchanged": _LOG_OPTS,
    "show": _LOG_OPTS + " --show-signature",
    "shortlog": _LOG_OPTS + " -s -e -w? --summary --email --numbered --committer --group=",
    "rev-list": _LOG_OPTS + " --objects --objects-edge --count --timestamp --header --bisect-all",
    "diff-tree": _DIFF_OPTS + " -r -t --root --stdin! -m -c --cc --always --no-commit-id --pretty? --format=",
    "diff-files": _DIFF_OPTS + " -0 -1 -2 -3 -c --cc",
    "diff-index": _DIFF_OPTS + " -m",
    "blame": "-b -c -l -t -s -e -w -f -n -p -M? -C? -L= -S! --root --show-stats --score-debug --show-name"
    " --show-number --show-email --porcelain --line-porcelain --incremental --encoding= --contents!"
    " --date= --progress --no-progress --reverse= --first-parent --abbrev? --color-lines --color-by-age"
    " --ignore-rev= --ignore-revs-file=P",
    "annotate": "-b -c -l -t -s -e -w -f -n -p -M? -C? -L= --root --show-stats --encoding= --date=",
    "rev-parse": "--abbrev-ref? --symbolic --symbolic-full-name --short? --verify -q --quiet --sq --not"
    " --all --branches? --tags? --remotes? --glob= --exclude= --disambiguate= --show-toplevel --show-prefix"
    " --show-cdup --git-dir --git-common-dir --absolute-git-dir --is-inside-git-dir --is-inside-work-tree"
    " --is-bare-repository --is-shallow-repository --show-superproject-working-tree --shared-index-path"
    " --show-object-format? --show-ref-format --local-env-vars --resolve-git-dir! --git-path= --default="
    " --prefix= --since= --after= --until= --before= --revs-only --no-revs --flags --no-flags --path-format=",
    "ls-files": "-c -d -o -i -s -u -k -m -t -v -f -z --cached --deleted --others --ignored --stage --unmerged"
    " --killed --modified --directory --no-empty-directory --eol --deduplicate -x= --exclude= -X=P"
    " --exclude-from=P --exclude-per-directory= --exclude-standard --error-unmatch --full-name --recurse-submodules"
    " --abbrev? --debug --sparse --format= --with-tree=",
    "ls-tree": "-d -r -t -l -z --long --name-only --name-status --object-only --full-name --full-tree"
    " --abbrev? --format=",
    "cat-file": "-t -s -e -p --batch? --batch-check? --batch-command! --batch-all-objects --follow-symlinks"
    " --textconv --filters --path= --allow-unknown-type --buffer --unordered -Z",
    "describe": "--all --tags --contains --abbrev= --candidates= --exact-match --debug --long --match="
    " --exclude= --always --first-parent --dirty? --broken?",
    "merge-base": "-a --all --octopus --independent --is-ancestor --fork-point",
    "name-rev": "--tags --refs= --exclude= --all --annotate-stdin --name-only --no-undefined --always",
    "count-objects": "-v -H --verbose --human-readable",
    "show-ref": "--head --heads --branches --tags -d --dereference -s --hash? --abbrev? --verify -q --quiet"
    " --exclude-existing? --exists",
    "for-each-ref": "--count= --sort= --format= --color? --shell --perl --python --tcl --points-at="
    " --merged? --no-merged? --contains? --no-contains? --ignore-case --omit-empty --exclude= --include-root-refs",
    "version": "--build-options",
    "check-ignore": "-q -v -n -z --quiet --verbose --non-matching --no-index --stdin!",
    "grep": "-a -i -I -w -v -h -H -l -L -c -n -o -q -z -E -G -F -P -e= -f=P -A= -B= -C= -W -p -m= -r"
    " --cached --no-index --untracked --exclude-standard --no-exclude-standard --recurse-submodules --text"
    " --textconv --no-textconv --ignore-case --word-regexp --invert-match --full-name --extended-regexp"
    " --basic-regexp --fixed-strings --perl-regexp --files-with-matches --name-only --files-without-match"
    " --null --count --color? --no-color --break --heading --line-number --column --show-function"
    " --function-context --only-matching --quiet --max-depth= --max-count= --threads= --and --or --not"
    " --all-match -O! --open-files-in-pager! --no-recursive --recursive",
    "branch": "-a -r -l -v --list --all --remotes --verbose --contains? --no-contains? --merged?"
    " --no-merged? --points-at= --sort= --format= --color? --no-color --column? --no-column --show-current"
    " --abbrev? --no-abbrev --ignore-case --omit-empty -i",
    "tag": "-l -n? --list --sort= --format= --contains? --no-contains? --merged? --no-merged? --points-at="
    " --column? --no-column --color? -i --ignore-case --omit-empty",
    "remote": "-v --verbose",
    "stash": "",
    "reflog": "",
    "config": "--get= --get-all= --get-regexp= --get-urlmatch= --list -l --show-origin --show-scope --null -z"
    " --name-only --local --global --system --worktree --type= --bool --int --bool-or-int --path"
    " --expiry-date --default= --includes --no-includes --file! -f! --blob!",
    "worktree": "",
    "help": "-a -g --all --guides --config",
}
_GIT_SUB_ARGS: dict[str, tuple[str, ...]] = {
    # subcommands whose first operand decides: only these forms read
    "stash": ("list", "show"),
    "reflog": ("show",),
    "worktree": ("list",),
    "remote": ("get-url", "show"),
}


_NUMERIC_GIT = frozenset({"log", "show", "whatchanged", "shortlog", "rev-list"})


@cache
def _git_table(sub: str) -> OptionTable:
    return OptionTable.parse(_GIT[sub] if sub else _GIT_GLOBAL, numeric=sub in _NUMERIC_GIT)


def git_view(args: list[str]) -> View:
    top = parse_options(args, _git_table(""), stop_at_operand=True)
    if top.problem:
        return View(problem=f"git {top.problem}")
    cwd: str | None = None
    for d in top.values("-C"):  # several -C options add up, as git applies them in turn
        cwd = d if cwd is None else os.path.join(cwd, d)
    if not top.operands:
        return View(cwd=cwd)
    sub, rest = top.operands[0], top.operands[1:]
    spec = _GIT.get(sub)
    if spec is None:
        return View(problem=f"git {sub} is not a read-only git command", cwd=cwd)
    parsed = parse_options(rest, _git_table(sub))
    if parsed.problem:
        return View(problem=f"git {sub} {parsed.problem}", cwd=cwd)
    ops = parsed.operands
    if sub in _GIT_SUB_ARGS:
        if sub == "stash" and not ops:
            return View(problem="git stash (push) changes the working tree", cwd=cwd)
        if ops and ops[0] not in _GIT_SUB_ARGS[sub]:
            return View(problem=f"git {sub} {ops[0]} changes the repository", cwd=cwd)
        if sub == "remote" and ops and ops[0] == "show" and "-n" not in rest:
            return View(problem="git remote show contacts the remote", cwd=cwd)
        ops = ops[1:]
        if sub == "stash" and any(o.startswith("-") for o in ops):
            return View(problem="git stash show takes no options here", cwd=cwd)
    if sub in ("branch", "tag") and ops and not parsed.has("-l", "--list"):
        return View(problem=f"git {sub} NAME creates a {sub}", cwd=cwd)
    if sub == "config" and not (
        parsed.has("--get", "--get-all", "--get-regexp", "--get-urlmatch", "--list", "-l")
    ):
        return View(problem="git config without --get/--list changes settings", cwd=cwd)
    view = View(cwd=cwd)
    if sub == "grep":
        if parsed.has("--no-index", "--untracked"):
            view.recursive.append(".")
        return view  # patterns, revisions and pathspecs of tracked files
    if sub == "diff" and parsed.has("--no-index"):
        view.reads += ops
        return view
    for op in ops:
        # REV:PATH shows a file's committed content; a protected name there still asks
        if ":" in op and not op.startswith(":/"):
            path = op.split(":", 1)[1]
            if path:
                view.reads.append(path)
    view.reads += parsed.values("-O", "--ignore-revs-file", "-X", "--exclude-from", "-f")
    return view
