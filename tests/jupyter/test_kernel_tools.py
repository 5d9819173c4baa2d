"""python and inspect on a plain namespace (no kernel), and their schemas (what the model sees)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nbagent.tools.base import PermissionQuery, PermissionRejected, ToolContext, ToolFailure
from nbagent.tools.kernel import KERNEL_KEY, DictNamespace, InspectTool, PythonTool, brief, summarize


class Harness:
    def __init__(self, root: Path, namespace: dict[str, Any] | None = None) -> None:
        self.asks: list[PermissionQuery] = []
        self.refuse = False
        self.ns = DictNamespace(namespace)
        self.ctx = ToolContext(
            root=root, ask=self._ask, state={KERNEL_KEY: self.ns}, output_dir=root / ".out"
        )

    async def _ask(self, query: PermissionQuery) -> None:
        self.asks.append(query)
        if self.refuse:
            raise PermissionRejected("refused")


async def test_python_runs_in_the_namespace_and_asks(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"x": 20})
    result = await PythonTool().run(PythonTool.params(code="print('hi')\ny = x + 1\ny * 2"), h.ctx)
    assert "[stdout]\nhi" in result.output
    assert "[result: int]\n42" in result.output
    assert h.ns.namespace["y"] == 21
    assert [q.permission for q in h.asks] == ["python"]
    assert h.asks[0].patterns == ["print('hi')\ny = x + 1\ny * 2"]


async def test_python_refused_does_not_run(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.refuse = True
    with pytest.raises(PermissionRejected):
        await PythonTool().run(PythonTool.params(code="ran = True"), h.ctx)
    assert "ran" not in h.ns.namespace


async def test_python_error_and_stderr(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    code = "import sys\nprint('warn', file=sys.stderr)\ndef f():\n    return 1 / 0\nf()"
    result = await PythonTool().run(PythonTool.params(code=code), h.ctx)
    assert "[stderr]\nwarn" in result.output
    assert "ZeroDivisionError: division by zero" in result.output
    assert "nbagent/tools" not in result.output  # our frames are not shown
    assert result.metadata["error"] is True
    syntax = await PythonTool().run(PythonTool.params(code="def broken(:"), h.ctx)
    assert "SyntaxError" in syntax.output


async def test_python_top_level_await(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    result = await PythonTool().run(
        PythonTool.params(code="import asyncio\nawait asyncio.sleep(0)\n7"), h.ctx
    )
    assert "[result: int]\n7" in result.output


async def test_python_output_is_bounded(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    result = await PythonTool().run(PythonTool.params(code="print('x' * 1_000_000)"), h.ctx)
    assert len(result.output) < 12_000
    assert "more characters" in result.output


async def test_python_refuses_the_agent_magic(tmp_path: Path) -> None:
    with pytest.raises(ToolFailure, match="cannot call itself"):
        await PythonTool().run(PythonTool.params(code="%%agent\nhi"), Harness(tmp_path).ctx)


async def test_tools_without_a_kernel_say_so(tmp_path: Path) -> None:
    ctx = ToolContext(root=tmp_path)
    with pytest.raises(ToolFailure, match="No live Python kernel"):
        await InspectTool().run(InspectTool.params(), ctx)


async def test_inspect_lists_user_variables(tmp_path: Path) -> None:
    import json as json_module

    h = Harness(tmp_path, {"__name__": "__main__", "df_like": [1, 2, 3], "_private": 1, "json": json_module})
    result = await InspectTool().run(InspectTool.params(), h.ctx)
    assert "df_like: list len 3" in result.output
    assert "_private" not in result.output
    assert "modules: json" in result.output


async def test_inspect_names_and_attributes(tmp_path: Path) -> None:
    class Model:
        def __init__(self) -> None:
            self.encoder = {"layers": 3}

    h = Harness(tmp_path, {"m": Model(), "data": {"a": 1, "b": [1, 2]}})
    out = (await InspectTool().run(InspectTool.params(name="data"), h.ctx)).output
    assert "dict with 2 keys" in out and "'b': list len 2" in out
    attr = (await InspectTool().run(InspectTool.params(name="m.encoder"), h.ctx)).output
    assert "'layers': int = 3" in attr
    with pytest.raises(ToolFailure, match="No variable named 'missing'"):
        await InspectTool().run(InspectTool.params(name="missing"), h.ctx)
    with pytest.raises(ToolFailure, match="not a variable name"):
        await InspectTool().run(InspectTool.params(name="__import__('os').system('x')"), h.ctx)


def test_dataframe_and_array_summaries() -> None:
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    df = pd.DataFrame({"a": range(1000), "b": ["x"] * 999 + [None]})
    text = summarize(df)
    assert "shape (1000, 2)" in text
    assert "a: int64" in text and "b: " in text and "1 null" in text
    assert "head(5):" in text
    assert brief(df) == "pandas.DataFrame 1000x2"
    big = pd.DataFrame(np.zeros((10, 500)))
    assert len(summarize(big)) <= 6_100
    arr = np.arange(12.0).reshape(3, 4)
    a = summarize(arr)
    assert "shape (3, 4), dtype float64" in a and "min 0.0, max 11.0" in a
    series = summarize(df["a"])
    assert "len=1000" in series


def test_summary_of_a_broken_repr_does_not_fail() -> None:
    class Bad:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert "Bad" in summarize(Bad())
