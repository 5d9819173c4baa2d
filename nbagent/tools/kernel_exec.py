"""Running code for the python tool: the :class:`Namespace` protocol and a plain-dict implementation.

``execute_into`` compiles a piece of code as statements plus, if it ends with an expression, that
expression (top-level ``await`` allowed), runs it in a namespace dict and fills an :class:`ExecResult`
with the value, or with the error as a traceback from which nbagent's own frames are removed. The
IPython kernel adapter (``nbagent.jupyter.kernel``) runs code through it with an interrupt guard;
:class:`DictNamespace` runs it in a plain dict, capturing stdout and stderr (scripts, tests).
"""

from __future__ import annotations

import ast
import contextlib
import inspect as pyinspect
import io
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


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


Emit = Callable[[dict[str, Any]], None]  # one nbformat output of a running cell, as it comes


@dataclass
class CellRun:
    """What running a notebook cell's code produced (``notebook_run``)."""

    execution_count: int | None
    status: Literal["ok", "error", "interrupted", "timeout"]
    outputs: list[dict[str, Any]]  # nbformat outputs, as the cell got them (streams merged)
    error: str = ""  # the error for the model (a traceback without our frames)


class Namespace(Protocol):
    """The live namespace the kernel tools act on."""

    def variables(self) -> dict[str, Any]:
        """The user's namespace (read it; do not keep it)."""
        ...

    def hidden(self) -> set[str]:
        """Names that are the environment's, not the user's (In, Out, get_ipython, ...)."""
        ...

    async def execute(self, code: str) -> ExecResult: ...

    async def run_cell(self, code: str, cell_id: str, emit: Emit, limit: float) -> CellRun:
        """Run a notebook cell's code; its outputs go to ``emit`` as they come."""
        ...

    def ran_source(self, count: int, cell_id: str) -> str | None:
        """The source that ran as execution ``count`` (cell ``cell_id``), None when not known."""
        ...


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
        self.count = 0
        self.ran: dict[str, tuple[int, str]] = {}

    def variables(self) -> dict[str, Any]:
        return self.namespace

    def hidden(self) -> set[str]:
        return {"__builtins__", "__name__"}

    async def run_cell(self, code: str, cell_id: str, emit: Emit, limit: float) -> CellRun:
        """The code runs as ``execute`` runs it; its streams, value and error become the cell's outputs."""
        self.count += 1
        self.ran[cell_id] = (self.count, code)
        result = await self.execute(code)
        outputs: list[dict[str, Any]] = []
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if text:
                outputs.append({"output_type": "stream", "name": name, "text": text})
        if result.has_result:
            data = {"text/plain": repr(result.result)}
            outputs.append(
                {"output_type": "execute_result", "data": data, "metadata": {}, "execution_count": self.count}
            )
        if result.error:
            name = result.error.splitlines()[-1].split(":")[0] if result.error.strip() else "Error"
            outputs.append(
                {"output_type": "error", "ename": name, "evalue": "", "traceback": result.error.splitlines()}
            )
        for output in outputs:
            emit(output)
        status: Literal["ok", "error", "interrupted"] = (
            "interrupted" if result.interrupted else "error" if result.error else "ok"
        )
        return CellRun(self.count, status, outputs, result.error)

    def ran_source(self, count: int, cell_id: str) -> str | None:
        known = self.ran.get(cell_id)
        return known[1] if known is not None and known[0] == count else None

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
