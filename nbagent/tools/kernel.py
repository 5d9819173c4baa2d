"""Kernel tools: ``python(code)`` runs code in the live namespace, ``inspect(name)`` summarises variables.

These tools import nothing from Jupyter: they act on a :class:`Namespace` found in the session's tool
state under ``KERNEL_KEY``. ``nbagent.jupyter.kernel`` provides the IPython one; :class:`DictNamespace`
runs code in a plain dict (scripts, tests).
"""

from __future__ import annotations

import ast
import asyncio
import base64
import contextlib
import inspect as pyinspect
import io
import reprlib
import sys
import traceback
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from nbagent.core.messages import Attachment
from nbagent.tools.base import PermissionQuery, Tool, ToolContext, ToolFailure, ToolResult, bound_output

KERNEL_KEY = "kernel"
MAX_SECTION_CHARS = 8_000  # stdout, stderr, result: each
MAX_SUMMARY_CHARS = 6_000
MAX_VARIABLES = 200
MAX_IMAGES = 3
MAX_IMAGE_BYTES = 2 * 1024 * 1024
NO_KERNEL = (
    "No live Python kernel in this session: python and inspect work in a notebook (%%agent). "
    "Use bash to run scripts instead."
)


@dataclass
class ExecResult:
    """What running a piece of code produced."""

    stdout: str = ""
    stderr: str = ""
    has_result: bool = False
    result: Any = None
    error: str = ""  # a formatted traceback, our own frames removed
    interrupted: bool = False  # a KeyboardInterrupt (kernel interrupt) stopped the code
    displays: list[dict[str, Any]] = field(default_factory=list)  # mime bundles shown by the code
    images: list[tuple[str, bytes]] = field(default_factory=list)  # (media type, bytes): figures, images


class Namespace(Protocol):
    """The live namespace the kernel tools act on."""

    def variables(self) -> dict[str, Any]:
        """The user's namespace (read it; do not keep it)."""
        ...

    def hidden(self) -> set[str]:
        """Names that are the environment's, not the user's (In, Out, get_ipython, ...)."""
        ...

    async def execute(self, code: str) -> ExecResult: ...


# ---------------------------------------------------------------------------------------------- execution


def split_last_expression(code: str, filename: str = "<nbagent-python>") -> tuple[Any, Any | None]:
    """Compile ``code`` as statements plus, if it ends with an expression, that expression alone.

    Top-level ``await`` is allowed in both. Raises ``SyntaxError``.
    """
    tree = ast.parse(code, filename=filename, mode="exec")
    last: ast.Expression | None = None
    final = tree.body[-1] if tree.body else None
    if isinstance(final, ast.Expr):
        tree.body.pop()
        last = ast.Expression(body=final.value)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    body = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
    expr = compile(last, filename, "eval", flags=flags, dont_inherit=True) if last is not None else None
    return body, expr


Guard = Callable[[], contextlib.AbstractContextManager[Any]]


async def run_compiled(code_obj: Any, namespace: dict[str, Any], guard: Guard | None = None) -> Any:
    """Evaluate a code object compiled with top-level await allowed.

    ``guard`` wraps code that runs synchronously (no top-level await): the kernel adapter uses it to
    let a kernel interrupt raise ``KeyboardInterrupt`` in the user's code.
    """
    if guard is not None and not code_obj.co_flags & pyinspect.CO_COROUTINE:
        with guard():
            return eval(code_obj, namespace)
    value = eval(code_obj, namespace)
    if pyinspect.iscoroutine(value):
        value = await value
    return value


def format_error(exc: BaseException, limit_lines: int = 40) -> str:
    """A traceback without nbagent's frames, bounded to its last lines."""
    tb = exc.__traceback__
    while tb is not None and _is_ours(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    text = "".join(lines).rstrip()
    out = text.splitlines()
    if len(out) > limit_lines:
        out = ["... (traceback shortened)", *out[-limit_lines:]]
    return "\n".join(out)


def _is_ours(filename: str) -> bool:
    return "/nbagent/" in filename.replace("\\", "/") and "/sample_repo/" not in filename


class DictNamespace:
    """Runs code in a plain dict, capturing stdout and stderr (no rich display)."""

    def __init__(self, namespace: dict[str, Any] | None = None) -> None:
        self.namespace: dict[str, Any] = namespace if namespace is not None else {"__name__": "__main__"}

    def variables(self) -> dict[str, Any]:
        return self.namespace

    def hidden(self) -> set[str]:
        return {"__builtins__", "__name__"}

    async def execute(self, code: str) -> ExecResult:
        result = ExecResult()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            await execute_into(code, self.namespace, result)
        result.stdout, result.stderr = out.getvalue(), err.getvalue()
        return result


async def execute_into(
    code: str, namespace: dict[str, Any], result: ExecResult, guard: Guard | None = None
) -> None:
    """Run ``code`` in ``namespace``; fill ``result`` with the value or the error."""
    try:
        body, expr = split_last_expression(code)
        await run_compiled(body, namespace, guard)
        if expr is not None:
            value = await run_compiled(expr, namespace, guard)
            if value is not None:
                result.has_result, result.result = True, value
    except KeyboardInterrupt:
        result.interrupted = True
        result.error = "KeyboardInterrupt: the code was interrupted."
    except SyntaxError as exc:
        result.error = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    except Exception as exc:
        result.error = format_error(exc)


# ---------------------------------------------------------------------------------------------- summaries

_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 20
_repr.maxlevel = 3


def short_repr(value: Any, limit: int = 200) -> str:
    try:
        text = _repr.repr(value)
    except Exception as exc:
        text = f"<repr failed: {type(exc).__name__}>"
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return (
        cls.__qualname__
        if module in ("builtins", "__main__")
        else f"{module.split('.')[0]}.{cls.__qualname__}"
    )


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _is_dataframe(v: Any) -> bool:
    return all(hasattr(v, a) for a in ("shape", "dtypes", "columns", "head", "iloc"))


def _is_series(v: Any) -> bool:
    return all(hasattr(v, a) for a in ("shape", "dtype", "head", "iloc", "index")) and not hasattr(
        v, "columns"
    )


def _is_array(v: Any) -> bool:
    return all(hasattr(v, a) for a in ("shape", "dtype", "ndim")) and not callable(getattr(v, "shape", None))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... [{len(text) - limit} more characters]"


def _safe(fn: Any, default: str = "?") -> str:
    try:
        return str(fn())
    except Exception:
        return default


def brief(value: Any) -> str:
    """One line: the type and the size of a value."""
    kind = type_name(value)
    try:
        if _is_dataframe(value):
            return f"{kind} {value.shape[0]}x{value.shape[1]}"
        if _is_series(value):
            return f"{kind} len {len(value)}, dtype {value.dtype}"
        if _is_array(value):
            return f"{kind} shape {tuple(value.shape)}, dtype {value.dtype}"
        if isinstance(value, types.ModuleType):
            return f"module {value.__name__}"
        if isinstance(value, type):
            return f"class {value.__qualname__}"
        if callable(value) and not hasattr(value, "__len__"):
            return f"{kind}{_safe(lambda: pyinspect.signature(value), '(...)')}"
        if isinstance(value, str | bytes):
            return f"{kind} len {len(value)}: {short_repr(value, 60)}"
        if hasattr(value, "__len__") and not isinstance(value, int | float | complex | bool):
            return f"{kind} len {len(value)}"
    except Exception:
        return kind
    return f"{kind} = {short_repr(value, 80)}"


def summarize(value: Any, limit: int = MAX_SUMMARY_CHARS) -> str:
    """A bounded, readable summary of any value, richer for data (DataFrames, arrays, tensors, models)."""
    try:
        text = _summarize(value)
    except Exception as exc:  # a summary must never fail the tool
        text = f"{type_name(value)} (summary failed: {type(exc).__name__}: {exc})\n{short_repr(value)}"
    return _clip(text, limit)


def _summarize(value: Any) -> str:
    kind = type_name(value)
    if value is None or isinstance(value, bool | int | float | complex):
        return _clip(repr(value), 2000)
    if _is_dataframe(value):
        return _summarize_dataframe(value, kind)
    if _is_series(value):
        lines = [f"{kind} name={value.name!r} len={len(value)} dtype={value.dtype}"]
        lines.append(_safe(lambda: value.head(10).to_string()))
        nulls = _safe(lambda: int(value.isna().sum()), "")
        if nulls:
            lines.append(f"nulls: {nulls}")
        return "\n".join(lines)
    if _is_array(value):
        return _summarize_array(value, kind)
    if isinstance(value, types.ModuleType):
        public = [n for n in dir(value) if not n.startswith("_")]
        return (
            f"module {value.__name__} ({getattr(value, '__file__', None) or 'built-in'})\n"
            f"{len(public)} public names: {', '.join(public[:40])}{' ...' if len(public) > 40 else ''}"
        )
    if isinstance(value, type) or pyinspect.isfunction(value) or pyinspect.ismethod(value):
        doc = (pyinspect.getdoc(value) or "").strip().splitlines()
        sig = _safe(lambda: pyinspect.signature(value), "(...)")
        head = (
            f"class {value.__qualname__}{sig}"
            if isinstance(value, type)
            else f"{kind} {value.__qualname__}{sig}"
        )
        return head + (f"\n{doc[0]}" if doc else "")
    if isinstance(value, dict):
        lines = [f"{kind} with {len(value)} keys"]
        for i, (k, v) in enumerate(value.items()):
            if i >= 30:
                lines.append(f"... {len(value) - 30} more keys")
                break
            lines.append(f"  {short_repr(k, 60)}: {brief(v)}")
        return "\n".join(lines)
    if isinstance(value, list | tuple | set | frozenset):
        types_count = Counter(type_name(v) for v in list(value)[:10_000])
        kinds = ", ".join(f"{n} {t}" for t, n in types_count.most_common(5))
        return f"{kind} len {len(value)} ({kinds})\n{short_repr(value, 1500)}"
    if isinstance(value, str | bytes):
        return f"{kind} len {len(value)}\n{_clip(repr(value[:2000]), 2200)}"
    model = _summarize_model(value, kind)
    if model:
        return model
    text = repr(value)
    size = _safe(lambda: _human_bytes(sys.getsizeof(value)), "")
    return f"{kind}{f' ({size})' if size else ''}\n{_clip(text, 3000)}"


def _summarize_dataframe(df: Any, kind: str) -> str:
    rows, cols = df.shape
    lines = [f"{kind} shape ({rows}, {cols})"]
    memory = _safe(lambda: _human_bytes(float(df.memory_usage(deep=False).sum())), "")
    if memory:
        lines[0] += f", memory {memory}"
    lines.append("columns (dtype, nulls):")
    nulls: dict[Any, Any] = {}
    with contextlib.suppress(Exception):
        nulls = dict(df.isna().sum()) if rows <= 5_000_000 else {}
    for i, (name, dtype) in enumerate(df.dtypes.items()):
        if i >= 50:
            lines.append(f"  ... {cols - 50} more columns")
            break
        missing = nulls.get(name)
        lines.append(f"  {name!s}: {dtype}" + (f", {int(missing)} null" if missing else ""))
    head = _safe(lambda: df.head(5).to_string(max_cols=20, max_colwidth=40), "")
    if head:
        lines.append("head(5):")
        lines.append(head)
    return "\n".join(lines)


def _summarize_array(arr: Any, kind: str) -> str:
    shape = tuple(arr.shape)
    line = f"{kind} shape {shape}, dtype {arr.dtype}"
    device = getattr(arr, "device", None)
    if device is not None and hasattr(arr, "requires_grad"):  # a tensor
        line += f", device {device}"
    nbytes = getattr(arr, "nbytes", None)
    if isinstance(nbytes, int):
        line += f", {_human_bytes(nbytes)}"
    lines = [line]
    size = 1
    for d in shape:
        size *= int(d)
    if 0 < size <= 50_000_000 and str(arr.dtype).startswith(
        ("int", "uint", "float", "torch.float", "torch.int")
    ):
        stats = _safe(lambda: f"min {arr.min()!s}, max {arr.max()!s}, mean {arr.mean()!s}", "")
        if stats:
            lines.append(stats)
    lines.append(_clip(repr(arr), 2000))
    return "\n".join(lines)


def _summarize_model(value: Any, kind: str) -> str | None:
    params = getattr(value, "parameters", None)
    if callable(params) and hasattr(value, "named_children"):  # torch.nn.Module and friends
        count = 0
        with contextlib.suppress(Exception):
            count = sum(int(p.numel()) for p in params())
        return f"{kind} ({count:,} parameters)\n{_clip(repr(value), 3000)}"
    get_params = getattr(value, "get_params", None)
    if callable(get_params):  # scikit-learn estimators
        fitted = (
            [n for n in vars(value) if n.endswith("_") and not n.startswith("_")]
            if hasattr(value, "__dict__")
            else []
        )
        text = f"{kind} params {short_repr(_safe(get_params), 1500)}"
        return text + (f"\nfitted attributes: {', '.join(fitted[:20])}" if fitted else "\n(not fitted)")
    return None


def list_variables(namespace: Namespace) -> str:
    variables = namespace.variables()
    hidden = namespace.hidden()
    names = [
        n
        for n in variables
        if not n.startswith("_") and n not in hidden and not isinstance(variables[n], types.ModuleType)
    ]
    modules = sorted(
        n
        for n in variables
        if not n.startswith("_") and n not in hidden and isinstance(variables[n], types.ModuleType)
    )
    if not names and not modules:
        return "No user variables yet."
    lines = [f"{len(names)} variables:"]
    for name in sorted(names)[:MAX_VARIABLES]:
        lines.append(f"  {name}: {brief(variables[name])}")
    if len(names) > MAX_VARIABLES:
        lines.append(f"  ... {len(names) - MAX_VARIABLES} more")
    if modules:
        lines.append(f"modules: {', '.join(modules[:60])}")
    return "\n".join(lines)


def lookup(namespace: Namespace, name: str) -> Any:
    """Resolve a dotted name (``df``, ``model.encoder``) without evaluating code."""
    parts = name.strip().split(".")
    if not all(p.isidentifier() for p in parts):
        raise ToolFailure(
            f"{name!r} is not a variable name or a dotted attribute path. Use python to evaluate expressions."
        )
    variables = namespace.variables()
    if parts[0] not in variables:
        close = sorted(
            n for n in variables if not n.startswith("_") and n.lower().startswith(parts[0][:2].lower())
        )
        hint = f" Similar names: {', '.join(close[:8])}." if close else ""
        raise ToolFailure(
            f"No variable named {parts[0]!r} in the kernel.{hint} Call inspect without a name to list them."
        )
    value = variables[parts[0]]
    for i, attr in enumerate(parts[1:], 1):
        try:
            value = getattr(value, attr)
        except Exception as exc:
            raise ToolFailure(
                f"{'.'.join(parts[:i])} has no attribute {attr!r} ({type(exc).__name__})."
            ) from exc
    return value


# ---------------------------------------------------------------------------------------------- tools


def kernel_of(ctx: ToolContext) -> Namespace:
    namespace = ctx.state.get(KERNEL_KEY)
    if namespace is None:
        raise ToolFailure(NO_KERNEL)
    return namespace  # type: ignore[no-any-return]


class PythonParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Python code; the last expression's value is returned")


def _section(title: str, text: str) -> str:
    return f"[{title}]\n{_clip(text.rstrip(), MAX_SECTION_CHARS)}"


def _display_summary(bundle: dict[str, Any]) -> str:
    for media in ("text/markdown", "text/plain"):
        if media in bundle:
            value = bundle[media]
            return _clip(value if isinstance(value, str) else "".join(value), 2000)
    return f"(display of {', '.join(sorted(bundle))})"


def format_exec(result: ExecResult) -> str:
    sections = []
    if result.stdout:
        sections.append(_section("stdout", result.stdout))
    if result.stderr:
        sections.append(_section("stderr", result.stderr))
    for bundle in result.displays:
        sections.append(_section("display", _display_summary(bundle)))
    if result.images:
        sections.append(f"[images] {min(len(result.images), MAX_IMAGES)} attached")
    if result.has_result:
        sections.append(_section(f"result: {type_name(result.result)}", summarize(result.result)))
    if result.error:
        sections.append(_section("error", result.error))
    return "\n".join(sections) if sections else "(no output)"


class PythonTool(Tool[PythonParams]):
    name = "python"
    params = PythonParams

    async def run(self, args: PythonParams, ctx: ToolContext) -> ToolResult:
        namespace = kernel_of(ctx)
        code = args.code
        if not code.strip():
            raise ToolFailure("code is empty.")
        stripped = code.lstrip()
        if stripped.startswith(("%%agent", "%agent")):
            raise ToolFailure("The agent cannot call itself through the %agent magic.")
        first = stripped.splitlines()[0]
        await ctx.ask(
            PermissionQuery(
                permission="python",
                patterns=[code],
                title=f"Run Python in the kernel: {first[:80]}{' ...' if len(code.splitlines()) > 1 else ''}",
                metadata={"code": code},
            )
        )
        result = await namespace.execute(code)
        if result.interrupted:
            raise asyncio.CancelledError("kernel interrupt")
        attachments = [
            Attachment(media_type=media, data=base64.b64encode(data).decode("ascii"), name=f"figure {i + 1}")
            for i, (media, data) in enumerate(result.images[:MAX_IMAGES])
            if len(data) <= MAX_IMAGE_BYTES
        ]
        output = bound_output(format_exec(result), ctx, label="python")
        title = "error" if result.error else (type_name(result.result) if result.has_result else "ok")
        return ToolResult(
            output=output,
            title=f"→ {title}",
            attachments=attachments,
            metadata={"error": bool(result.error), "images": len(attachments)},
        )


class InspectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Variable or dotted attribute; omit to list variables")


class InspectTool(Tool[InspectParams]):
    name = "inspect"
    params = InspectParams
    read_only = True

    async def run(self, args: InspectParams, ctx: ToolContext) -> ToolResult:
        namespace = kernel_of(ctx)
        if not args.name:
            return ToolResult(output=list_variables(namespace), title="variables")
        await ctx.ask(
            PermissionQuery(permission="inspect", patterns=[args.name], title=f"Inspect {args.name}")
        )
        value = lookup(namespace, args.name)
        return ToolResult(output=summarize(value), title=f"{args.name}: {brief(value)[:80]}")
