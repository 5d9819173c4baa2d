"""Custom Python tools: a typed function with a docstring becomes a tool.

Files: ``~/.config/nbagent/tools/*.py`` (the user's, always) and ``.nbagent/tools/*.py`` (the project's,
only once the folder is trusted: ``nbagent trust``; they are project code like hooks)::

    from nbagent.ext.custom_tools import tool

    @tool
    def word_count(path: str, min_length: int = 1) -> str:
        \"\"\"Count the words of a file that are at least min_length long.\"\"\"
        ...

The signature becomes the parameters (a pydantic model: types, defaults, ``Annotated[..., Field(...)]``),
the docstring the description; sync or async; the name is the function's (or ``@tool(name=...)``).
Every call asks leave under the permission key = the tool's name (``"word_count": "allow"`` in the
permission rules allows it); the result (any value; str as is, others as JSON) is bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, create_model

from nbagent.core.config import user_config_dir
from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult, bound_output

__all__ = ["FunctionTool", "as_tool", "load_custom_tools", "project_tool_files", "tool", "user_tool_files"]

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
MARK = "__nbagent_tool__"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionTool(Tool[BaseModel]):
    """A tool made from a function; ``name`` is set on a subclass per tool (see ``make_tool``)."""

    read_only = False

    def __init__(self, function: Callable[..., Any], params: type[BaseModel], description: str) -> None:
        self.function = function
        self.params = params
        self._description = description

    @property
    def description(self) -> str:
        return self._description

    async def run(self, args: BaseModel, ctx: ToolContext) -> ToolResult:
        data = args.model_dump()
        shown = json.dumps(data, sort_keys=True, default=str)
        await ctx.ask(
            PermissionQuery(
                permission=self.name,
                patterns=[shown if len(shown) <= 200 else shown[:197] + "..."],
                title=f"Run custom tool {self.name} {shown[:120]}",
            )
        )
        kwargs = {k: getattr(args, k) for k in type(args).model_fields}
        try:
            if inspect.iscoroutinefunction(self.function):
                value = await self.function(**kwargs)
            else:
                value = await asyncio.to_thread(self.function, **kwargs)
        except ToolFailure:
            raise
        except Exception as exc:
            raise ToolFailure(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc
        if isinstance(value, ToolResult):
            return value
        text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
        return ToolResult(output=bound_output(text, ctx, label=self.name), title=self.name)


def make_tool(function: Callable[..., Any], name: str | None = None) -> FunctionTool:
    """The tool for ``function``: its typed signature as a pydantic model, its docstring as description."""
    tool_name = name or function.__name__
    if not NAME.match(tool_name):
        raise ValueError(f"{tool_name!r} is not a valid tool name (letters, digits, _ and -, up to 64)")
    doc = inspect.getdoc(function)
    if not doc:
        raise ValueError(f"custom tool {tool_name!r} has no docstring: it becomes the tool's description")
    hints = get_type_hints(function, include_extras=True)
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(function).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ValueError(f"custom tool {tool_name!r}: *args/**kwargs cannot become parameters")
        if pname not in hints:
            raise ValueError(f"custom tool {tool_name!r}: parameter {pname!r} needs a type annotation")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (hints[pname], default)
    params = create_model(f"{tool_name}_params", __base__=_Params, **fields)
    cls = type(f"CustomTool_{tool_name}", (FunctionTool,), {"name": tool_name})
    made: FunctionTool = cls(function, params, doc)
    return made


@overload
def tool(function: Callable[..., Any], /) -> Callable[..., Any]: ...
@overload
def tool(*, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...
def tool(function: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Mark a function as a tool (``@tool`` or ``@tool(name="x")``); the function is returned unchanged."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        setattr(fn, MARK, name or fn.__name__)
        return fn

    return mark(function) if function is not None else mark


def as_tool(value: Any) -> Tool[Any]:
    """A ``Tool`` as is, or a (decorated or plain) function made into one."""
    if isinstance(value, Tool):
        return value
    if callable(value):
        return make_tool(value, getattr(value, MARK, None))
    raise TypeError(f"{value!r} is neither a Tool nor a function")


def user_tool_files(home: Path | None = None) -> list[Path]:
    folder = (home or user_config_dir()) / "tools"
    return sorted(folder.glob("*.py")) if folder.is_dir() else []


def project_tool_files(root: Path) -> list[Path]:
    folder = root / ".nbagent" / "tools"
    return sorted(folder.glob("*.py")) if folder.is_dir() else []


def _load_file(path: Path) -> list[Tool[Any]]:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"nbagent_custom_tools_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError("not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return [make_tool(v, getattr(v, MARK)) for v in vars(module).values() if callable(v) and hasattr(v, MARK)]


def load_custom_tools(files: list[Path], taken: set[str]) -> tuple[list[Tool[Any]], list[str]]:
    """The tools defined in ``files``, and the problems (a file that fails, a name already used)."""
    tools: list[Tool[Any]] = []
    problems: list[str] = []
    names = set(taken)
    for path in files:
        try:
            found = _load_file(path)
        except BaseException as exc:  # a custom file must never take the session down
            if isinstance(exc, KeyboardInterrupt):
                raise
            problems.append(f"Custom tools in {path} not loaded: {type(exc).__name__}: {exc}. Fix the file.")
            continue
        for item in found:
            if item.name in names:
                problems.append(f"Custom tool {item.name!r} in {path} skipped: a tool with that name exists.")
                continue
            names.add(item.name)
            tools.append(item)
    return tools, problems
