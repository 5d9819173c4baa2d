"""Size of the first request before the user's text: system prompt and tool definitions, in tokens.

.venv/bin/python -m bench.prompt_size
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from nbagent.core.config import Config
from nbagent.core.session import Session
from nbagent.providers.litellm_provider import litellm_module


def main() -> None:
    litellm = litellm_module()
    with tempfile.TemporaryDirectory() as tmp:
        session = Session(Path(tmp), Config(model="openai/gpt-4o"), api_key="k")
        system = [{"role": "system", "content": session.system_prompt}]
        tools = session.tool_schemas
        model = "gpt-4o"
        sys_tokens = litellm.token_counter(model=model, messages=system)
        total = litellm.token_counter(model=model, messages=system, tools=tools)
        print(f"system prompt: {sys_tokens} tokens")
        print(f"tool definitions ({len(tools)} tools): {total - sys_tokens} tokens")
        for tool in tools:
            one = litellm.token_counter(model=model, messages=[{"role": "user", "content": json.dumps(tool)}])
            print(f"  {tool['function']['name']:<12} ~{one}")
        print(f"total before the user's text: {total} tokens (litellm token_counter, {model} tokenizer)")


if __name__ == "__main__":
    main()
