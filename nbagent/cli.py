"""``nbagent`` command line: run a task, the demo, and inspection commands.

Imports stay lazy: ``nbagent --help`` never loads litellm or rich.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbagent import __version__

if TYPE_CHECKING:
    from nbagent.core.session import Session

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_STEP_LIMIT, EXIT_CANCELLED = 0, 1, 2, 3, 130


def _preload_litellm() -> None:
    """Import litellm in the background while we set up, to take it off the critical path."""

    def load() -> None:
        from nbagent.providers.litellm_provider import litellm_module

        litellm_module()

    threading.Thread(target=load, name="nbagent-preload", daemon=True).start()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbagent", description="A coding agent for Jupyter and the terminal."
    )
    parser.add_argument("--version", action="version", version=f"nbagent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run one task in the current directory to completion")
    run.add_argument("prompt", nargs="+", help="the task")
    add_model_options(run)
    run.add_argument("--yes", "-y", action="store_true", help="approve every request that rules do not deny")
    run.add_argument(
        "--trust-project",
        action="store_true",
        help="run the project's own hooks for this run without asking (not saved; --yes does not do this)",
    )
    run.add_argument(
        "--output-format",
        choices=["text", "json", "stream-json"],
        default="text",
        help="text (rendered), json (one object at the end) or stream-json (one event per line)",
    )
    run.add_argument("--max-steps", type=int, default=None, help="model steps before the turn stops")
    run.add_argument(
        "--mode",
        choices=["default", "acceptEdits", "plan", "bypass"],
        default=None,
        help="permission mode: default, acceptEdits (edits in the project allowed), plan (read-only), bypass (no prompts)",
    )
    run.add_argument("--cwd", type=Path, default=None, help="project directory (default: the current one)")
    resume = run.add_mutually_exclusive_group()
    resume.add_argument(
        "--continue", "-c", dest="continue_", action="store_true", help="continue the last session here"
    )
    resume.add_argument("--session", "-s", help="continue the session with this id (or id prefix)")

    sessions = sub.add_parser("sessions", help="list the sessions of this project (or all with --all)")
    sessions.add_argument("--all", action="store_true", help="sessions of every project")
    sessions.add_argument("--limit", type=int, default=20)

    export = sub.add_parser("export", help="print a session as a markdown transcript (secrets redacted)")
    export.add_argument("session_id", help="session id or a unique prefix")
    export.add_argument("--json", action="store_true", help="print the session as one JSON document")

    demo = sub.add_parser("demo", help="run the demo task with the built-in scripted model (no API key)")
    demo.add_argument("--keep", action="store_true", help="keep the demo's temporary project folder")
    demo.add_argument("--output-format", choices=["text", "stream-json"], default="text")

    cfg = sub.add_parser("config", help="configuration helpers")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    cfg_sub.add_parser("schema", help="print the JSON schema of nbagent.json")
    cfg_sub.add_parser("show", help="print the merged configuration for the current directory")

    sub.add_parser("events-schema", help="print the JSON schema of the event stream")

    trust = sub.add_parser("trust", help="trust a project folder to run its hooks (or --revoke, --list)")
    trust.add_argument(
        "path", nargs="?", type=Path, default=None, help="the folder (default: the current one)"
    )
    trust_how = trust.add_mutually_exclusive_group()
    trust_how.add_argument("--revoke", action="store_true", help="forget the trust of the folder")
    trust_how.add_argument("--list", dest="list_", action="store_true", help="list the trusted folders")

    from nbagent.permissions.check import add_cli

    add_cli(sub)

    from nbagent.jupyter.execute import add_arguments as add_execute_arguments

    add_execute_arguments(
        sub.add_parser(
            "execute", help="execute a notebook headless (--replay: from its recorded model replies)"
        )
    )
    return parser


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", help="litellm model string, e.g. anthropic/claude-sonnet-4-5")
    p.add_argument("--api-base", help="base URL of an OpenAI-compatible or Anthropic endpoint")
    p.add_argument("--api-key", help="API key (default: the provider's environment variable); never stored")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from nbagent.core.errors import NbagentError

    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "demo":
            from nbagent.demo.run import run_demo

            return run_demo(keep=args.keep, output_format=args.output_format)
        if args.command == "config":
            return cmd_config(args)
        if args.command == "permission":
            result: int = args.func(args)
            return result
        if args.command == "sessions":
            return cmd_sessions(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "execute":
            from nbagent.jupyter.execute import run_from_args

            return run_from_args(args)
        if args.command == "trust":
            return cmd_trust(args)
        if args.command == "events-schema":
            from nbagent.core.events import event_json_schema

            print(json.dumps(event_json_schema(), indent=2))
            return EXIT_OK
    except NbagentError as exc:
        print(f"nbagent: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if args.command == "run":
            print(
                "\nnbagent: interrupted; running tools were stopped and the session was saved"
                " (resume with `nbagent run --continue`).",
                file=sys.stderr,
            )
        return EXIT_CANCELLED
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def cmd_config(args: argparse.Namespace) -> int:
    from nbagent.core.config import config_json_schema, load_config

    if args.config_command == "schema":
        print(json.dumps(config_json_schema(), indent=2))
    else:
        print(load_config(Path.cwd()).model_dump_json(indent=2, by_alias=True, exclude_none=True))
    return EXIT_OK


def cmd_trust(args: argparse.Namespace) -> int:
    from nbagent.ext.trust import trust_command

    return trust_command(args.path, revoke=args.revoke, list_=args.list_)


def open_store(config: Any) -> Any:
    from nbagent.store import SessionStore

    return SessionStore(Path(config.store).expanduser() if config.store else None)


def cmd_sessions(args: argparse.Namespace) -> int:
    import time

    from nbagent.core.config import load_config

    root = Path.cwd().resolve()
    store = open_store(load_config(root))
    rows = store.list_sessions(None if args.all else root, limit=args.limit)
    if not rows:
        print("No sessions yet." if args.all else f"No sessions for {root} (use --all for every project).")
        return EXIT_OK
    for info in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.updated))
        cost = f"${info.usage.cost:.4f}" if info.usage.cost is not None else "-"
        where = f"  {info.project}" if args.all else ""
        print(
            f"{info.id}  {when}  {info.message_count:>4} msgs  {cost:>9}  {info.model or '-'}  {info.title}{where}"
        )
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    import json

    from nbagent.core.config import load_config
    from nbagent.core.scrub import Scrubber
    from nbagent.store.export import export_json, export_markdown

    config = load_config(Path.cwd().resolve())
    store = open_store(config)
    info, messages = store.load_session(store.resolve_id(args.session_id))
    project = info.project if info.project is not None and info.project.is_dir() else Path.cwd().resolve()
    scrubber = Scrubber.for_project(project, config)  # the environment's, the config's and the .env secrets
    if args.json:
        print(json.dumps(export_json(info, messages, store.summaries(info.id), scrubber), indent=1))
    else:
        print(export_markdown(info, messages, store.summaries(info.id), scrubber))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from nbagent.core.config import load_config
    from nbagent.core.permission import HeadlessPolicy
    from nbagent.core.session import Session, uses_native

    root = (args.cwd or Path.cwd()).resolve()
    overrides: dict[str, Any] = {
        "model": args.model,
        "api_base": args.api_base,
        "max_steps": args.max_steps,
        "mode": args.mode,
    }
    config = load_config(root, overrides)
    if not uses_native(config):
        _preload_litellm()
    interactive = args.output_format == "text" and sys.stdin.isatty() and not args.yes
    headless: HeadlessPolicy | None = "allow" if args.yes else (None if interactive else "deny")
    store = open_store(config)
    resume_id = args.session
    if args.continue_:
        latest = store.latest_session(root)
        if latest is None:
            from nbagent.core.errors import NbagentError

            raise NbagentError(f"No session to continue in {root}.", "Start one with `nbagent run PROMPT`.")
        resume_id = latest.id
    options: dict[str, Any] = {
        "api_key": args.api_key,
        "headless": headless,
        "trust_project": args.trust_project,
    }
    if resume_id:
        session = Session.resume(root, config, store, resume_id, **options)
    else:
        session = Session(root, config, store=store, **options)
    return run_session(session, " ".join(args.prompt), args.output_format, interactive=interactive)


def run_session(session: Session, prompt: str, output_format: str, *, interactive: bool = False) -> int:
    """Drive one turn to the end, rendering its events; returns the process exit code."""
    return asyncio.run(_drive(session, prompt, output_format, interactive))


async def _drive(session: Session, prompt: str, output_format: str, interactive: bool) -> int:
    from nbagent.core.events import PermissionAsked, TurnFinished

    renderer = None
    if output_format == "text":
        from nbagent.cli_render import Renderer

        renderer = Renderer(session.model)
    finished: TurnFinished | None = None
    try:
        async for event in session.run(prompt):
            if output_format == "stream-json":
                sys.stdout.write(event.model_dump_json() + "\n")
                sys.stdout.flush()
            elif renderer is not None:
                renderer.render(event)
            if isinstance(event, PermissionAsked) and interactive and renderer is not None:
                kind, feedback = await asyncio.to_thread(renderer.ask_permission, event)
                session.reply(event.request_id, kind, feedback)
            if isinstance(event, TurnFinished):
                finished = event
    finally:
        await session.close()
    if finished is None:
        return EXIT_ERROR
    if output_format == "json":
        print(
            json.dumps(
                {
                    "session_id": session.id,
                    "result": finished.text,
                    "reason": finished.reason,
                    "steps": finished.steps,
                    "usage": finished.usage.model_dump(),
                }
            )
        )
    return {"stop": EXIT_OK, "error": EXIT_ERROR, "step_limit": EXIT_STEP_LIMIT, "cancelled": EXIT_CANCELLED}[
        finished.reason
    ]
