"""Provider failures classified the same on both paths (the native client and litellm), over real HTTP:
429 with a short or a long ``retry-after``, 529 overloaded, usage limits and quotas named in a 429 or a
403 body, a 5xx storm, and error bodies shaped as a list (Google's ``[{"error": {...}}]``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from nbagent.core.errors import ProviderError
from nbagent.providers.base import ModelRequest, TextChunk
from nbagent.providers.errors import body_message, reset_seconds
from nbagent.providers.litellm_provider import LiteLLMProvider
from nbagent.providers.native import NativeProvider
from nbagent.providers.scripted import ErrorReply, ListScript, Reply
from nbagent.providers.scripted.server import ScriptedModelServer
from tests.conftest import checked_servers

KEY = "sk-test-secret-0123456789"
MODELS = {"openai": "openai/gpt-4.1", "anthropic": "anthropic/claude-sonnet-4-5"}
PATHS = pytest.mark.parametrize("path", ["native", "litellm"])
BOTH = pytest.mark.parametrize("protocol", ["openai", "anthropic"])
GOOGLE_LIST = [
    {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted: daily request quota of gemini-2.5-pro reached.",
            "status": "RESOURCE_EXHAUSTED",
        }
    }
]


@dataclass
class BodyReply(ErrorReply):
    """An error answered with ``body`` as it is (any JSON shape), not the protocol's error object."""

    body: Any = field(default=None)


class BodyServer(ScriptedModelServer):
    """The scripted server, able to answer an error body of any shape (a list, say)."""

    def _error(self, h: Any, protocol: str, err: ErrorReply) -> None:
        if isinstance(err, BodyReply):
            data = json.dumps(err.body).encode()
            h.headers_sent = True
            h.send_response(err.status)
            h.send_header("content-type", "application/json")
            h.send_header("content-length", str(len(data)))
            for name, value in err.headers.items():
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(data)
            return
        super()._error(h, protocol, err)


@pytest.fixture
def serve_errors() -> Iterator[Any]:
    with checked_servers() as servers:

        def start(answers: list[Any]) -> BodyServer:
            server = BodyServer(ListScript(answers), exact=True)
            servers.append(server)
            server.start()
            return server

        yield start


@pytest.fixture
async def providers() -> AsyncIterator[dict[str, Any]]:
    made: dict[str, Any] = {"native": NativeProvider(), "litellm": LiteLLMProvider()}
    yield made
    for provider in made.values():
        await provider.close()


def request(server: ScriptedModelServer, protocol: str) -> ModelRequest:
    return ModelRequest(
        model=MODELS[protocol],
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        tools=[],
        api_base=server.openai_base if protocol == "openai" else server.url,
        api_key=KEY,
    )


async def failure(provider: Any, req: ModelRequest) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        async for _ in provider.stream(req):
            pass
    error = info.value
    assert KEY not in str(error) and KEY not in error.hint
    return error


@PATHS
@BOTH
async def test_rate_limit_short_retry_after_is_retried_long_one_is_a_usage_limit(
    serve_errors: Any, providers: dict[str, Any], path: str, protocol: str
) -> None:
    server = serve_errors(
        [
            ErrorReply(429, "slow down", headers={"retry-after": "7"}),
            ErrorReply(429, "slow down", headers={"retry-after": "7200"}),
        ]
    )
    short = await failure(providers[path], request(server, protocol))
    assert (short.kind, short.retryable, short.retry_after) == ("rate_limit", True, 7.0)
    long = await failure(providers[path], request(server, protocol))
    assert (long.kind, long.retryable, long.retry_after) == ("usage_limit", False, 7200.0)
    assert "slow down" in str(long) and MODELS[protocol] in str(long)
    assert "fallback" in long.hint and "nbagent.json" in long.hint and "about 2 hours" in long.hint


@PATHS
@BOTH
async def test_usage_limit_messages_in_429_and_403(
    serve_errors: Any, providers: dict[str, Any], path: str, protocol: str
) -> None:
    server = serve_errors(
        [
            ErrorReply(429, "Usage limit reached for this plan; your limit resets in 4 hours."),
            ErrorReply(
                403, "You have reached your usage limit for this month.", error_type="permission_error"
            ),
            ErrorReply(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                error_type="insufficient_quota",
            ),
        ]
    )
    resets = await failure(providers[path], request(server, protocol))
    assert (resets.kind, resets.retryable, resets.retry_after) == ("usage_limit", False, 4 * 3600.0)
    assert "limit resets in 4 hours" in str(resets) and "about 4 hours" in resets.hint
    forbidden = await failure(providers[path], request(server, protocol))
    assert (forbidden.kind, forbidden.retryable) == ("usage_limit", False)
    assert "usage limit for this month" in str(forbidden)
    quota = await failure(providers[path], request(server, protocol))
    assert (quota.kind, quota.retryable, quota.retry_after) == ("usage_limit", False, None)
    assert "fallback" in quota.hint


@PATHS
async def test_a_per_minute_quota_naming_a_short_wait_stays_a_retried_rate_limit(
    serve_errors: Any, providers: dict[str, Any], path: str
) -> None:
    server = serve_errors([ErrorReply(429, "Quota exceeded for requests per minute. Please retry in 20s.")])
    error = await failure(providers[path], request(server, "openai"))
    assert (error.kind, error.retryable, error.retry_after) == ("rate_limit", True, 20.0)


@PATHS
@BOTH
async def test_overloaded_and_a_5xx_storm_are_retryable(
    serve_errors: Any, providers: dict[str, Any], path: str, protocol: str
) -> None:
    statuses = [529, 500, 502, 503]
    server = serve_errors([ErrorReply(status, f"storm {status}") for status in statuses])
    kinds = []
    for status in statuses:
        error = await failure(providers[path], request(server, protocol))
        assert error.retryable and f"storm {status}" in str(error)
        kinds.append(error.kind)
    assert kinds[0] == "overloaded" and kinds[3] == "overloaded"
    assert set(kinds[1:3]) <= {"server", "overloaded"}


@PATHS
@BOTH
async def test_error_bodies_shaped_as_a_list_give_their_message(
    serve_errors: Any, providers: dict[str, Any], path: str, protocol: str
) -> None:
    server = serve_errors(
        [
            BodyReply(429, body=GOOGLE_LIST),
            BodyReply(500, body=[{"error": {"code": 500, "message": "Internal error encountered."}}]),
            Reply(text="fine again"),
        ]
    )
    quota = await failure(providers[path], request(server, protocol))
    assert "daily request quota of gemini-2.5-pro reached" in str(quota)
    assert "[{" not in str(quota)  # the message, not the raw body
    assert quota.kind == "usage_limit" and not quota.retryable
    internal = await failure(providers[path], request(server, protocol))
    assert "Internal error encountered." in str(internal) and internal.retryable
    chunks = [c async for c in providers[path].stream(request(server, protocol))]
    assert "".join(c.text for c in chunks if isinstance(c, TextChunk)) == "fine again"


def test_reset_times_and_quoted_bodies() -> None:
    assert reset_seconds("Your limit resets in 4 hours.") == 4 * 3600
    assert reset_seconds("Please try again in 7m12s.") == 432
    assert reset_seconds("resets in 2 hours and 30 minutes") == 9000
    assert reset_seconds("Please retry in 33.5s") == 33.5
    assert reset_seconds("rate limited") is None
    # how litellm quotes a body: as a Python literal, as bytes, as JSON followed by more text
    python = "RateLimitError: OpenAIException - Error code: 429 - [{'error': {'code': 429, 'message': 'q'}}]"
    assert body_message(python) == "q"
    assert body_message("""AnthropicException - b'{"error": {"message": "over"}}'""") == "over"
    assert body_message('Error - {"error": {"message": "json"}} (request id 7)') == "json"
    assert body_message("no body {here") == ""
