"""What the inspect tool (and the python tool's result section) says about values in the kernel.

Bounded, readable summaries of any value, richer for data: DataFrames (shape, dtypes, nulls, head),
Series, arrays and tensors (shape, dtype, device, stats), modules, classes and functions, containers,
torch models and scikit-learn estimators; ``brief`` gives one line (type and size). A summary never
fails: if a value's own methods raise, a plainer one is given. Also the variable listing and the
lookup of a dotted name (``model.encoder``) in a :class:`~nbagent.tools.kernel_exec.Namespace`,
which never evaluates code.
"""

from __future__ import annotations

import contextlib
import inspect as pyinspect
import reprlib
import sys
import types
from collections import Counter
from typing import Any

from nbagent.tools.base import ToolFailure
from nbagent.tools.kernel_exec import Namespace

MAX_SUMMARY_CHARS = 6_000
MAX_VARIABLES = 200


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


def clip_text(text: str, limit: int) -> str:
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
    return clip_text(text, limit)


def _summarize(value: Any) -> str:
    kind = type_name(value)
    if value is None or isinstance(value, bool | int | float | complex):
        return clip_text(repr(value), 2000)
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
        return f"{kind} len {len(value)}\n{clip_text(repr(value[:2000]), 2200)}"
    model = _summarize_model(value, kind)
    if model:
        return model
    text = repr(value)
    size = _safe(lambda: _human_bytes(sys.getsizeof(value)), "")
    return f"{kind}{f' ({size})' if size else ''}\n{clip_text(text, 3000)}"


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
    lines.append(clip_text(repr(arr), 2000))
    return "\n".join(lines)


def _summarize_model(value: Any, kind: str) -> str | None:
    params = getattr(value, "parameters", None)
    if callable(params) and hasattr(value, "named_children"):  # torch.nn.Module and friends
        count = 0
        with contextlib.suppress(Exception):
            count = sum(int(p.numel()) for p in params())
        return f"{kind} ({count:,} parameters)\n{clip_text(repr(value), 3000)}"
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


def state_card(namespace: Namespace) -> str:
    """The kernel's state in brief: the user's variables (names, types, shapes) and the last error."""
    lines = [list_variables(namespace)]
    last_error = getattr(namespace, "last_error", None)
    error = last_error() if callable(last_error) else ""
    lines.append(f"last error: {error}" if error else "last error: none")
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
