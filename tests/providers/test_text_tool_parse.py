"""Reading tool calls from reply text: the shapes local models write, streamed in any chunk size."""

from __future__ import annotations

from typing import Any

import pytest

from nbagent.core.errors import ProviderError
from nbagent.providers.text_tool_parse import CallReader
from nbagent.providers.text_tools import rejects_tools, to_text_messages

TOOLS = {"read", "edit", "bash"}
SIZES = pytest.mark.parametrize("size", [1, 2, 5, 64, 10_000])


def read(text: str, size: int) -> tuple[str, list[tuple[str, dict[str, Any], str]]]:
    """(the text shown, the calls) for ``text`` streamed ``size`` characters at a time."""
    reader = CallReader(TOOLS)
    shown = "".join(reader.feed(text[i : i + size]) for i in range(0, len(text), size)) + reader.finish()
    return shown, [(c.name, c.arguments, c.problem) for c in reader.calls]


@SIZES
@pytest.mark.parametrize(
    ("reply", "prose", "calls"),
    [
        (  # the format the prompt asks for, with prose around it
            'Reading it.\n```tool_call\n{"name": "read", "arguments": {"file_path": "a.py"}}\n```\nDone.',
            "Reading it.\n\nDone.",
            [("read", {"file_path": "a.py"})],
        ),
        (  # Hermes/Qwen tags, two calls, text after the JSON inside the tag
            '<tool_call>{"name": "read", "arguments": {"file_path": "a"}}</tool_call>\n'
            '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}} ok\n</tool_call>',
            "\n",
            [("read", {"file_path": "a"}), ("bash", {"command": "ls"})],
        ),
        (  # single quotes, a trailing comma, Python's True
            "```tool_call\n{'name': 'edit', 'arguments': {'file_path': 'x', 'replace_all': True,},}\n```",
            "",
            [("edit", {"file_path": "x", "replace_all": True})],
        ),
        (  # a list of calls in one block; "parameters" instead of "arguments"
            '```tool_call\n[{"name": "read", "parameters": {"file_path": "a"}},'
            ' {"name": "read", "parameters": {"file_path": "b"}}]\n```',
            "",
            [("read", {"file_path": "a"}), ("read", {"file_path": "b"})],
        ),
        (  # OpenAI's shape, arguments as a JSON string
            '<tool_call>{"type": "function", "function": {"name": "bash", "arguments": "{\\"command\\": \\"pwd\\"}"}}'
            "</tool_call>",
            "",
            [("bash", {"command": "pwd"})],
        ),
        (  # nothing but a call: the whole reply
            '  {"name": "read", "arguments": {"file_path": "a.py"}}\n',
            "",
            [("read", {"file_path": "a.py"})],
        ),
        (  # a json block calling a known tool
            'Calling:\n```json\n{"name": "bash", "arguments": {"command": "make"}}\n```',
            "Calling:\n",
            [("bash", {"command": "make"})],
        ),
        (  # a reply cut short before the block closed, brackets missing
            'Let me look.\n<tool_call>{"name": "read", "arguments": {"file_path": "a.py"',
            "Let me look.\n",
            [("read", {"file_path": "a.py"})],
        ),
        (  # a fence inside a JSON string (a markdown file the call writes) does not end the block
            '```tool_call\n{"name": "edit", "arguments": {"file_path": "R.md", "old_string": "x",'
            ' "new_string": "```py\nprint(1)\n```\n"}}\n```\nafter',
            "\nafter",
            [("edit", {"file_path": "R.md", "old_string": "x", "new_string": "```py\nprint(1)\n```\n"})],
        ),
    ],
)
def test_calls_are_read(size: int, reply: str, prose: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
    shown, found = read(reply, size)
    assert shown == prose
    assert [(name, args) for name, args, _ in found] == calls
    assert all(not problem for _, _, problem in found)


@SIZES
@pytest.mark.parametrize(
    "reply",
    [
        "Plain answer with `code`, ``double`` ticks and a < sign.",
        'Here is the config:\n```json\n{"debug": true}\n```\nThat is all.',
        'An example:\n```python\nprint("<tool_call>")\n```\nok',
        '{"answer": 42} is the JSON you asked for.',
        "[link](http://example.com) first",
    ],
)
def test_text_that_is_not_a_call_stays_text(size: int, reply: str) -> None:
    assert read(reply, size) == (reply, [])


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ('```tool_call\n{"name": "read", "arguments": {"file_path": }\n```', "its JSON does not parse"),
        ("<tool_call>read a.py please</tool_call>", "there is no JSON object"),
        ('<tool_call>{"arguments": {"file_path": "a"}}</tool_call>', 'has no "name"'),
        ('<tool_call>{"name": "read", "arguments": ["a"]}</tool_call>', '"arguments" must be a JSON object'),
    ],
)
def test_an_unreadable_call_says_what_is_wrong(reply: str, problem: str) -> None:
    shown, found = read(reply, 7)
    assert shown == "" and len(found) == 1 and problem in found[0][2]


def test_a_call_shown_back_to_the_model_round_trips() -> None:
    history = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "Reading.",
            "tool_calls": [
                {
                    "id": "abc123XYZ",
                    "type": "function",
                    "function": {"name": "read", "arguments": '{"file_path": "a"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "abc123XYZ", "content": "1: hello"},
        {"role": "user", "content": [{"type": "text", "text": "Images returned by the tools above:"}]},
    ]
    schema = {
        "type": "function",
        "function": {"name": "read", "description": "Read a file.", "parameters": {}},
    }
    out = to_text_messages(history, [schema])
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert "## read\nRead a file." in out[0]["content"]
    shown, found = read(out[2]["content"], 3)
    assert shown == "Reading.\n\n" and found == [("read", {"file_path": "a"}, "")]
    blocks = out[3]["content"]  # the result and the images, one user message
    assert blocks[0]["text"] == '<tool_result name="read">\n1: hello\n</tool_result>'
    assert blocks[1]["text"] == "Images returned by the tools above:"


@pytest.mark.parametrize(
    ("message", "switch"),
    [
        ("registry.ollama.ai/library/gemma:2b does not support tools", True),
        ('"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set', True),
        ("tools param requires --jinja flag", True),
        ("This model does not support function calling", True),
        ("messages with role 'tool' must be a response to a preceding message with 'tool_calls'", False),
        ("max_tokens is too large", False),
        ("Unsupported value: temperature", False),
    ],
)
def test_which_errors_mean_no_tool_support(message: str, switch: bool) -> None:
    error = ProviderError(
        f"The provider rejected the request as invalid. (openai/m: {message})", kind="bad_request"
    )
    assert rejects_tools(error, "openai/m") is switch
    assert not rejects_tools(ProviderError(message, kind="rate_limit"), "openai/m")
