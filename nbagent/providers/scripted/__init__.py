"""A scripted model served over loopback HTTP, speaking OpenAI Chat Completions and Anthropic Messages.

The demo and the tests use it: litellm reaches it exactly as it reaches a real provider.
"""

from nbagent.providers.scripted.quirks import Quirks
from nbagent.providers.scripted.script import (
    CutStream,
    EmptyStream,
    ErrorBody,
    ErrorReply,
    FunctionScript,
    ListScript,
    Reply,
    Script,
    ToolCallSpec,
)
from nbagent.providers.scripted.server import ScriptedModelServer, ScriptMismatch

__all__ = [
    "CutStream",
    "EmptyStream",
    "ErrorBody",
    "ErrorReply",
    "FunctionScript",
    "ListScript",
    "Quirks",
    "Reply",
    "Script",
    "ScriptMismatch",
    "ScriptedModelServer",
    "ToolCallSpec",
]
