"""The permission layer against an attacker: one corpus per class of the security review.

Every command here is written to do harm (create ``PWNED``, read a secret, delete ``victim``). The
policy must not allow any of them, and, run for real through the bash tool with the policy in front
(no one to answer, as in a headless run), the harm must not happen. Deny rules must hold against
every obfuscated form, also under ``--yes`` and bypass mode.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from nbagent.core.config import Config
from nbagent.core.errors import ConfigError
from nbagent.core.permission import HeadlessPolicy, PermissionBroker
from nbagent.permissions.bash import analyze
from nbagent.permissions.policy import RulePolicy
from nbagent.tools.base import PermissionQuery, PermissionRejected, ToolContext
from nbagent.tools.shell import BashTool, close_shells

SECRET = "sk-test-SECRETVALUE1234567890"

# ---- class 1: "read-only" programs that run code or write through their options --------------------
WRITE_OR_RUN = [
    "sed -ne '1e touch PWNED' -e 1p README.md",
    "sed -n '1e touch PWNED' README.md",
    "sed --in-pl s/demo/x/ README.md",
    "sed -i.bak s/demo/x/ README.md",
    "sed -n 'w PWNED' README.md",
    "sed 's/demo/touch PWNED/e' README.md",
    "sed -n -f script.sed README.md",
    "sort --o=PWNED README.md",
    "sort -oPWNED README.md",
    "sort --output PWNED README.md",
    "sort --compress-prog=sh README.md",
    "time -o PWNED ls",
    "/usr/bin/time --outp=PWNED ls",
    "date -s 2020-01-01",
    "date --se=2020-01-01",
    "date 010100002020",
    "hostname -F PWNED",
    "hostname evil",
    "find . -fprint PWNED",
    "find . -fprin PWNED",
    "find . -delete",
    "find . -exec touch PWNED \\;",
    "find . -execdir touch PWNED +",
    "git log --output=PWNED",
    "git diff --outp=PWNED",
    "git -c core.pager='touch PWNED' log",
    "git --exec-path=. status",
    "git -p log",
    "git grep --open-files-in-pager='touch PWNED' demo",
    "git grep -O'touch PWNED' demo",
    "rg --pre 'touch PWNED' demo",
    "rg --pr=./x demo",
    "tree -o PWNED",
    "file -C -m magic",
    "jq -f prog.jq x.json",
    "uniq README.md PWNED",
    "tee PWNED",
    "ls --hyperlink; touch PWNED",
    "cat README.md > PWNED",
    "git stash",
    "git branch pwned",
    "awk 'BEGIN{system(\"touch PWNED\")}'",
    "less README.md",
]
# ---- class 2: the environment through wrappers ------------------------------------------------------
ENVIRONMENT = [
    "env 'BASH_FUNC_ls%%=() { touch PWNED; }' bash -c ls",
    "BASH_ENV=./x.sh bash -c ls",
    "PATH=/tmp/x nohup ls",
    "LD_PRELOAD=./x.so timeout 5 ls",
    "GIT_EXTERNAL_DIFF=./x nice git diff",
    "env GIT_CONFIG_PARAMETERS=\"'core.pager=touch PWNED'\" git log",
    "GIT_DIR=/tmp/x git status",
    "GIT_CONFIG_GLOBAL=./evil git status",
    "export PYTHONSTARTUP=x.py; python3 -V",
    "PATH=.:$PATH; ls",
    "export PATH=.; ls",
    "nice -n 5 env LD_PRELOAD=x ls",
    "env -i PATH=/tmp/x ls",
    "PAGER='touch PWNED' git log",
    "LESSOPEN='|touch PWNED %s' cat README.md",
    "set -a; LD_PRELOAD=x; ls",
    "stdbuf -o0 env PERL5OPT=-d ls",
    "IFS=/; ls",
    "PROMPT_COMMAND='touch PWNED' ls",
]
# ---- class 3: parser misreads ---------------------------------------------------------------------
PARSER = [
    'cat <<E"O"F\nhello\nEOF\ntouch PWNED',
    "cat <<'E'OF\nx\nEOF\ntouch PWNED",
    'cat <<"E"OF\nx\nEOF\ntouch PWNED',
    "cat <<EOF\n`touch PWNED`\nEOF",
    "cat <<EOF\n$(touch PWNED)\nEOF",
    "x='a[$(touch PWNED)]'; echo $((x))",
    "x='a[$(touch PWNED)]'; (( x ))",
    "x='a[$(touch PWNED)]'; [[ $x -eq 1 ]]",
    "read x < payload; echo $((x + 1))",
    "x=$(cat payload); echo $(( x ))",
    "x=$'a[\\x24(touch PWNED)]'; echo $((x))",
    "echo ${a[$(touch PWNED)]}",
    "x='a[$(touch PWNED)]'; let y=x",
    "{ls,-la,;touch,PWNED}",
    "read y < payload; declare -i x; x=y",
    "read y < payload; echo ${HOME:y}",
    "read y < payload; echo ${HOME:0:y}",
]
# ---- class 4: secrets read without a prompt --------------------------------------------------------
SECRETS = [
    "declare -x",
    "typeset -x",
    "export",
    "export -p",
    "declare -p",
    "declare",
    "env",
    "printenv",
    "printenv OPENAI_API_KEY",
    "set",
    "compgen -v",
    "cat <<< $OPENAI_API_KEY",
    "cat <<EOF\n$OPENAI_API_KEY\nEOF",
    "x=OPENAI_API_KEY; echo ${!x}",
    "declare -n r=OPENAI_API_KEY; echo $r",
    'echo "$OPENAI_API_KEY"',
    "x=$OPENAI_API_KEY; echo $x",
    "echo ${OPENAI_API_KEY:0:40}",
    "wc --files0-from=list",
    "sort --files0-from=list",
    "date -f .env",
    "date --file=.env",
    "grep -f .env README.md",
    "grep -r sk- .",
    "grep -R sk-",
    "grep -rl sk- --include=.env .",
    "rg -uu sk-",
    "rg --hidden sk-",
    "rg -. sk-",
    "git grep --no-index sk-",
    "git grep --untracked sk-",
    "find . -exec cat {} +",
    "cat .e?v",
    "cat .[^.]*",
    "head .*",
    "cat .en[v]",
    "cat .env*",
    "cat {.env,README.md}",
    "cat link-to-secret",
    "grep -r sk- linked-dir",
    "env -C .. cat proj/.env",
    "git --work-tree=.. status",
    "git --git-dir=../other/.git log",
    "cd .. && cat proj/.env",
    "git -C .. log",
    "cat ~/.ssh/id_rsa",
    "cat /proc/self/environ",
    "xargs cat < list",
    "tac .env",
    "sed -n p .env",
    "xargs -a .env echo",
    "xargs --arg-file=.env echo",
]
SAFE = [
    "ls",
    "git status",
    "cat README.md",
    "grep -n demo src/x.py",
    "sed -n 1,20p README.md",
    'while read -r line; do echo "$line"; done < README.md',
    "test -f README.md && echo yes",
    "git log --oneline -5 | head -3",
    "grep -rn demo src",
    "find . -name '*.py' -type f",
]

# ---- class 6: deny rules evaded by obfuscation ------------------------------------------------------
DENY_RULES = {"bash": {"rm *": "deny", "git push*": "deny"}}
OBFUSCATED_DENIED = [
    "rm -rf victim",
    "{rm,-rf,victim}",
    "rm${IFS}-rf victim",
    "rm$IFS-rf${IFS}victim",
    "$'rm\\0x' -rf victim",
    "$'\\x72m' victim",
    "r\\m victim",
    "'r'm victim",
    "/bin/rm victim",
    "command rm victim",
    "exec rm victim",
    "builtin command rm victim",
    "nice -n5 rm victim",
    "timeout 5 rm victim",
    "nohup rm victim",
    "sudo rm victim",
    "env rm victim",
    "env -i rm victim",
    "bash -c -- 'rm -rf victim'",
    "bash -xc 'rm victim'",
    "sh -c 'rm victim' --",
    "env -S 'rm -rf victim'",
    "eval 'rm victim'",
    "eval -- 'rm victim'",
    "xargs rm < list",
    "find . -name victim -exec rm {} \\;",
    "echo rm victim | sh",
    "echo 'rm victim' | bash",
    "bash <<< 'rm victim'",
    "bash <<EOF\nrm victim\nEOF",
    "python3 -c \"import os; os.system('rm victim')\"",
    "a=rm; $a victim",
    "$(echo rm) victim",
    "`echo rm` victim",
    "rm -r -f victim",
    "true && " * 10_000 + "rm victim",
    "(" * 3_000 + "rm victim" + ")" * 3_000,
    "git -c k=v push",
    "git --git-dir=.git push",
    "git -C . push origin",
    "git --no-pager push",
    "/usr/bin/git push",
    "flock /tmp/l rm victim",
    "flock /tmp/l -c 'rm victim'",
    "script -qc 'rm victim' /dev/null",
    "su -c 'rm victim' root",
    "unbuffer rm victim",
    "setsid rm victim",
    "watch -n1 rm victim",
    "chronic rm victim",
    "stdbuf -o0 rm victim",
    "strace -o /dev/null rm victim",
    "bash <(echo rm victim)",
    ". <(echo rm victim)",
    "source /dev/stdin <<< 'rm victim'",
    "echo 'rm victim' > s.sh && bash s.sh",
    "printf 'rm victim' > s.py; python3 s.py",
    "bash staged.sh",
    "source staged.sh",
    ". ./staged.sh",
    "sh -x staged.sh",
    "trap 'rm victim' EXIT",
    "time rm victim",
    "coproc rm victim",
    "! rm victim",
    "if true; then rm victim; fi",
    "f() { rm victim; }; f",
]


@pytest.fixture
def attack(project: Path, tmp_path: Path) -> Path:
    """The project of conftest plus what attacks reach for."""
    (project / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
    (project / "src" / "x.py").write_text("demo = 1\n")
    (project / "payload").write_text("a[$(touch PWNED)]\n")
    (project / "list").write_text(".env\n")
    (project / "victim").write_text("keep me\n")
    (project / "staged.sh").write_text("echo building\nrm victim\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / ".env").write_text(SECRET)
    (project / "link-to-secret").symlink_to(outside / "secret.txt")
    (project / "linked-dir").symlink_to(outside)
    return project


def decide(root: Path, command: str, permission: dict[str, Any] | None = None, mode: str = "default") -> str:
    policy = RulePolicy(root, Config.model_validate({"permission": permission or {}}), mode=mode)  # type: ignore[arg-type]
    return policy.evaluate(PermissionQuery(permission="bash", patterns=[command])).action


@pytest.mark.parametrize("command", WRITE_OR_RUN + ENVIRONMENT + PARSER + SECRETS)
def test_no_attack_is_allowed(attack: Path, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert decide(attack, command) != "allow", command


@pytest.mark.parametrize("command", SAFE)
def test_harmless_read_only_commands_still_run_without_asking(attack: Path, command: str) -> None:
    assert decide(attack, command) == "allow"


@pytest.mark.parametrize("mode", ["default", "bypass", "acceptEdits"])
@pytest.mark.parametrize("command", OBFUSCATED_DENIED)
def test_every_obfuscated_form_of_a_denied_command_is_denied(attack: Path, command: str, mode: str) -> None:
    assert decide(attack, command, DENY_RULES, mode) == "deny", command[:80]


def test_the_long_chain_is_analysed_not_given_up(attack: Path) -> None:
    a = analyze("true && " * 10_000 + "ls")
    assert not a.limit and len(a.commands) == 10_001
    assert decide(attack, "true && " * 10_000 + "ls") == "allow"


async def _run(root: Path, command: str, headless: HeadlessPolicy, permission: dict[str, Any] | None = None,
               mode: str = "default") -> str:  # fmt: skip
    policy = RulePolicy(root, Config.model_validate({"permission": permission or {}}), mode=mode)  # type: ignore[arg-type]
    broker = PermissionBroker(policy, lambda _e: None, headless=headless)
    ctx = ToolContext(root=root, ask=broker.check, output_dir=root.parent / "out")
    tool = BashTool()
    try:
        result = await tool.run(tool.parse({"command": command, "timeout": 20}), ctx)
        return result.output
    except PermissionRejected as exc:
        return f"refused: {exc}"
    finally:
        await close_shells(ctx.state)


@pytest.mark.parametrize("command", WRITE_OR_RUN + ENVIRONMENT + PARSER)
def test_harm_does_not_happen_in_a_headless_run(attack: Path, command: str) -> None:
    out = asyncio.run(_run(attack, command, "deny"))
    assert out.startswith("refused"), out
    assert not (attack / "PWNED").exists()


@pytest.mark.parametrize("command", SECRETS)
def test_secrets_do_not_leak_in_a_headless_run(
    attack: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = asyncio.run(_run(attack, command, "deny"))
    assert SECRET not in out


@pytest.mark.parametrize("command", [c for c in OBFUSCATED_DENIED if len(c) < 500])
def test_denied_commands_do_not_run_even_with_yes_or_bypass(attack: Path, command: str) -> None:
    for headless, mode in (("allow", "default"), ("allow", "bypass")):
        out = asyncio.run(_run(attack, command, headless, DENY_RULES, mode))  # type: ignore[arg-type]
        assert out.startswith("refused"), out
        assert (attack / "victim").read_text() == "keep me\n"


def test_commands_nbagent_cannot_see_need_a_person_when_deny_rules_exist(attack: Path) -> None:
    """--yes and bypass never approve what the analysis cannot see, once a deny rule could be dodged."""
    command = "echo cm0gdmljdGlt | base64 -d | sh"
    out = asyncio.run(_run(attack, command, "allow", DENY_RULES))
    assert out.startswith("refused") and "only a person" in out
    assert decide(attack, command, DENY_RULES, "bypass") == "deny"
    # without deny rules there is nothing to dodge: --yes approves what asks
    assert not asyncio.run(_run(attack, "echo ls | sh", "allow")).startswith("refused")


def test_safe_commands_really_run(attack: Path) -> None:
    out = asyncio.run(_run(attack, "grep -n demo src/x.py && sed -n 1,20p README.md", "deny"))
    assert "1:demo = 1" in out and "# demo" in out


@pytest.mark.parametrize(
    "command",
    [
        "cp evil .git/config",
        "cp evil .git/confi?",
        "cp evil .git/",
        "mkdir -p sub/.git",
        "echo 'gitdir: ../evil' > sub/.git",
        "cp evil sub/.git",
        "cp -r evil-tree/. .",
        "cp -r evil-tree sub",
        "mv evil .nbagent/permissions.local.json",
        "cp evil nbagent.json",
        "touch .claude/settings.json",
        "cp -l .git/config notes",
        "cp -s /etc/passwd notes",
        "cp evil .git/hooks/pre-commit",
        "mv .git/config elsewhere",
        "cp evil .mcp.json",
        "cp evil ../outside-file",
        "touch $X",
    ],
)
def test_accept_edits_never_writes_what_changes_what_runs(attack: Path, command: str) -> None:
    (attack / "evil").write_text("[core]\n\tfsmonitor = touch PWNED\n")
    (attack / "evil-tree" / ".git").mkdir(parents=True)
    (attack / "evil-tree" / ".git" / "config").write_text("[core]\n\tfsmonitor = touch PWNED\n")
    assert decide(attack, command, mode="acceptEdits") != "allow", command


def test_accept_edits_still_allows_ordinary_file_commands(attack: Path) -> None:
    for command in ("mkdir -p build/out", "touch src/new.py", "cp README.md docs.md", "mv src/x.py src/y.py"):
        assert decide(attack, command, mode="acceptEdits") == "allow", command


@pytest.mark.parametrize("pattern", ["[z-a]*", "[", "a[b-a]"])
def test_an_invalid_pattern_is_an_error_at_load_naming_file_and_key(project: Path, pattern: str) -> None:
    import json

    from nbagent.core.config import load_config

    (project / "nbagent.json").write_text(
        json.dumps({"permission": {"bash": {"rm *": "deny", pattern: "ask"}}})
    )

    config = load_config(project)
    if pattern == "[":  # a lone bracket is a literal character, as in bash
        assert decide(project, "rm x", config.permission) == "deny"
        return
    with pytest.raises(ConfigError) as err:
        RulePolicy(project, config)
    assert str(project / "nbagent.json") in str(err.value) and pattern in str(err.value)


def test_environment_of_the_test_is_clean() -> None:
    assert "PWNED" not in os.listdir(".")
