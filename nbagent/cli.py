"""``nbagent`` command line: chat (the default in a terminal), run a task, the demo, inspection commands.

Imports stay lazy: ``nbagent --help`` never loads litellm or rich.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nbagent import __version__
from nbagent.cli_session import (
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    INTERRUPTED,
    add_session_options,
    error_document,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbagent", description="A coding agent for Jupyter and the terminal."
    )
    parser.add_argument("--version", action="version", version=f"nbagent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run one task in the current directory to completion")
    run.add_argument("prompt", nargs="+", help="the task")
    add_session_options(run)
    run.add_argument("--yes", "-y", action="store_true", help="approve every request that rules do not deny")
    run.add_argument(
        "--output-format",
        choices=["text", "json", "stream-json"],
        default="text",
        help="text (rendered), json (one object at the end) or stream-json (one event per line)",
    )

    chat = sub.add_parser("chat", help="chat with the agent in this terminal (the default with no command)")
    add_session_options(chat)

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

    sub.add_parser("plugins", help="list the plugins and custom tools that load here")  # issue 14 (M3)
    mcp_cmd = sub.add_parser("mcp", help="MCP: `nbagent mcp list`, `nbagent mcp serve --notebook NB`")
    mcp_sub = mcp_cmd.add_subparsers(dest="mcp_command", metavar="ACTION", required=True)
    mcp_sub.add_parser("list", help="the configured MCP servers: their state, tools and errors")
    serve = mcp_sub.add_parser(
        "serve",
        help="serve the live kernel of a notebook open in JupyterLab to other agents over MCP",
        description="Serve the kernel of a notebook open in a running Jupyter server (python, inspect, read,"
        " notebook_edit, notebook_run) over MCP on 127.0.0.1, with nbagent's permission rules; prompts"
        " appear in the notebook. Runs until Ctrl+C.",
    )
    serve.add_argument(
        "--notebook", type=Path, default=None, help="the notebook (default: the only one open with a kernel)"
    )
    serve.add_argument(
        "--url", default=None, help="the Jupyter server (default: the running ones found here)"
    )
    serve.add_argument("--token", default=None, help="the Jupyter server's token (default: $JUPYTER_TOKEN)")
    serve.add_argument("--port", type=int, default=0, help="the MCP port on 127.0.0.1 (default: a free one)")

    from nbagent.permissions.check import add_cli

    add_cli(sub)

    from nbagent.jupyter.execute import add_arguments as add_execute_arguments

    add_execute_arguments(
        sub.add_parser(
            "execute", help="execute a notebook headless (--replay: from its recorded model replies)"
        )
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    # httpx imports its own command line (click, rich, pygments: ~80 ms) as it loads; nbagent never
    # uses it, and the model client needs httpx before the first request.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()
            return EXIT_USAGE
        args = parser.parse_args(["chat"])
    from nbagent.core.errors import NbagentError

    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "chat":
            from nbagent.cli_chat import run_chat

            return run_chat(args)
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
        if args.command == "mcp":
            if args.mcp_command == "serve":
                from nbagent.jupyter.mcp_connect import serve as mcp_serve

                return mcp_serve(args.notebook, args.url, args.token, args.port)
            from nbagent.core.mcp_session import mcp_list

            return mcp_list(Path.cwd())
        if args.command == "plugins":  # issue 14 (M3)
            from nbagent.core.config import load_config
            from nbagent.core.plugin_wiring import plugins_report

            print(plugins_report(Path.cwd(), load_config(Path.cwd())))
            return EXIT_OK
        if args.command == "events-schema":
            from nbagent.core.events import event_json_schema

            print(json.dumps(event_json_schema(), indent=2))
            return EXIT_OK
    except NbagentError as exc:
        if getattr(args, "output_format", "text") == "json":
            print(error_document(str(exc), exc.hint, type(exc).__name__))
        print(f"nbagent: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        if args.command == "run":
            print(f"\n{INTERRUPTED}", file=sys.stderr)
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


def open_store(config: Any, *, notices: bool = True) -> Any:
    """The session store; a damaged one moved aside is said on stderr (``notices``)."""
    from nbagent.store import SessionStore

    store = SessionStore(Path(config.store).expanduser() if config.store else None)
    if notices:
        for line in store.notices:
            print(f"warning: {line}", file=sys.stderr)
        store.notices = []
    return store


def cmd_sessions(args: argparse.Namespace) -> int:
    import time

    from nbagent.core.config import load_config

    root = Path.cwd().resolve()
    store = open_store(load_config(root))
    rows = store.list_sessions(None if args.all else root, limit=args.limit)
    if not rows:
        print("No sessions yet." if args.all else f"No sessions for {root} (use --all for every project).")
        return EXIT_OK

    def show(info: Any, depth: int) -> None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.updated))
        cost = f"${info.usage.cost:.4f}" if info.usage.cost is not None else "-"
        where = f"  {info.project}" if args.all and not depth else ""
        agent = f"[{info.agent}] " if depth and info.agent else ""
        print(
            f"{'  ' * depth}{'└ ' if depth else ''}{info.id}  {when}  {info.message_count:>4} msgs  {cost:>9}"
            f"  {info.model or '-'}  {agent}{info.title}{where}"
        )
        if depth < 8:  # subagent sessions under their parent
            for child in store.children(info.id):
                show(child, depth + 1)

    for info in rows:
        show(info, 0)
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
    from nbagent.cli_session import open_session, run_session

    interactive = args.output_format == "text" and sys.stdin.isatty() and not args.yes
    headless = "allow" if args.yes else (None if interactive else "deny")
    session = open_session(args, headless=headless)
    return run_session(session, " ".join(args.prompt), args.output_format, interactive=interactive)
