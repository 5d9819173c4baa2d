"""The shapes real servers send, through both paths (native client, litellm), streamed and whole:
parallel calls at ``index: 0``, calls without ids, content as lists of parts, an empty answer and an
HTTP 200 carrying an error (both retried, never an empty success)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest

from nbagent.core.events import Retrying, ToolCallCompleted
from nbagent.core.messages import ReasoningPart
from nbagent.providers.scripted import EmptyStream, ErrorBody, ListScript, Quirks, Reply, ToolCallSpec
from tests.providers.test_quirks_reasoning import FORMS, PATHS, bash, quirky, session_on, turn

__all__ = ["quirky"]  # the fixture, shared

LOCAL = "hosted_vllm/qwen3-coder"  # an OpenAI-compatible local server on both paths


def parallel() -> list[Reply]:
    calls = [ToolCallSpec("bash", bash("echo alpha")), ToolCallSpec("bash", bash("echo beta"))]
    return [Reply(tool_calls=calls), Reply(text="Both ran.")]


@PATHS
@FORMS
@pytest.mark.parametrize("no_ids", [False, True])
async def test_parallel_calls_at_index_zero(
    quirky: Any, tmp_path: Path, path: Literal["native", "litellm"], form: str, no_ids: bool
) -> None:
    quirks = Quirks(parallel_index0=True, no_call_ids=no_ids, ignore_stream=form == "whole")
    server = quirky(ListScript(parallel()), quirks)
    session = session_on(tmp_path, path, {LOCAL: server})
    events, _ = await turn(session, "run both")
    outputs = sorted(e.output.split()[0] for e in events if isinstance(e, ToolCallCompleted))
    assert outputs == ["alpha", "beta"]
    sent = server.requests[-1].body["messages"]
    calls = next(m["tool_calls"] for m in sent if m.get("tool_calls"))
    results = [m["tool_call_id"] for m in sent if m.get("role") == "tool"]
    assert len({c["id"] for c in calls}) == 2 and [c["id"] for c in calls] == results


@PATHS
@FORMS
async def test_content_as_lists_of_parts(
    quirky: Any, tmp_path: Path, path: Literal["native", "litellm"], form: str
) -> None:
    """Mistral's reasoning models: text and thinking as parts; ids of 9 alphanumerics, no unknown fields."""
    model = "mistral/magistral-medium-latest" if path == "litellm" else "openai/magistral-medium-latest"
    script = [
        Reply(reasoning="Let me check.", tool_calls=[ToolCallSpec("bash", bash("echo gamma"))]),
        Reply(text="It printed gamma.", reasoning="Easy."),
    ]
    server = quirky(
        ListScript(script), Quirks(content_parts=True, mistral=True, ignore_stream=form == "whole")
    )
    session = session_on(tmp_path, path, {model: server})
    _, finished = await turn(session, "check")
    assert finished.text == "It printed gamma."
    reasoning = [p.text for m in session.messages for p in m.parts if isinstance(p, ReasoningPart)]
    assert reasoning == ["Let me check.", "Easy."]


@PATHS
async def test_ids_made_for_a_server_that_sends_none_suit_mistral(
    quirky: Any, tmp_path: Path, path: Literal["native", "litellm"]
) -> None:
    local = quirky(ListScript([*parallel()[:1], Reply(text="ok")]), Quirks(no_call_ids=True))
    model = "mistral/devstral-small" if path == "litellm" else "openai/devstral-small"
    strict = quirky(ListScript([Reply(text="fine")]), Quirks(mistral=True))
    session = session_on(tmp_path, path, {LOCAL: local, model: strict})
    await turn(session, "first")
    session.set_model(model)
    await turn(session, "then")
    ids = [c["id"] for m in strict.requests[0].body["messages"] for c in m.get("tool_calls") or []]
    assert len(ids) == 2 and all(len(i) == 9 and i.isalnum() for i in ids)


FAILURES = pytest.mark.parametrize(
    "failure",
    [EmptyStream(), ErrorBody("upstream overloaded"), ErrorBody("backend unavailable", listed=True)],
    ids=["empty", "error-body", "error-list"],
)


@PATHS
@FORMS
@FAILURES
async def test_an_answer_that_looks_like_success_is_retried(
    quirky: Any, tmp_path: Path, path: Literal["native", "litellm"], form: str, failure: Any
) -> None:
    server = quirky(ListScript([failure, Reply(text="Second try.")]), Quirks(ignore_stream=form == "whole"))
    session = session_on(tmp_path, path, {LOCAL: server})
    events, finished = await turn(session, "hello")
    retries = [e for e in events if isinstance(e, Retrying)]
    assert len(retries) == 1 and finished.text == "Second try."
    said = retries[0].reason
    expected = {
        "empty": "empty response",
        "error-body": "upstream overloaded",
        "error-list": "backend unavailable",
    }
    assert any(v in said for v in expected.values()), said
    assert json.dumps(server.requests[0].body).count('"stream": true') == 1
