"""The scripted model as a local server: it also says what Ollama, vLLM, llama.cpp or LM Studio say
about their models, so a test can check that nbagent reads the context window from the server.

    info = {"GET /v1/models": {"data": [{"id": "coder", "max_model_len": 8192}]}}
    with LocalModelServer(ListScript([...]), info) as server:   # chat as ScriptedModelServer does
        ...
    server.info_requests                                        # [InfoRequest("GET", "/v1/models", ...)]

A route's answer is a JSON payload (HTTP 200) or an :class:`InfoReply` (another status); every other
GET is a 404, as on a server that does not have the route.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from nbagent.providers.scripted.script import Script
from nbagent.providers.scripted.server import ScriptedModelServer


@dataclass
class InfoReply:
    status: int
    payload: Any = field(default_factory=dict)


@dataclass
class InfoRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class LocalModelServer(ScriptedModelServer):
    """:class:`ScriptedModelServer` plus information routes (``"GET /props"``, ``"POST /api/show"``...)."""

    def __init__(self, script: Script, info: dict[str, Any], port: int = 0, *, exact: bool = False) -> None:
        self.info = dict(info)
        self.info_requests: list[InfoRequest] = []
        self._info_lock = threading.Lock()
        super().__init__(script, port, exact=exact)

    def info_paths(self) -> list[str]:
        with self._info_lock:
            return [f"{r.method} {r.path}" for r in self.info_requests]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self
        base: Any = super()._handler_class()

        class Handler(base):  # type: ignore[misc]
            def do_GET(self) -> None:
                self._info("GET")

            def do_POST(self) -> None:
                if f"POST {self.path.split('?')[0]}" in server.info:
                    self._info("POST")
                else:
                    super().do_POST()

            def _info(self, method: str) -> None:
                path = self.path.split("?")[0]
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with server._info_lock:
                    server.info_requests.append(InfoRequest(method, path, dict(self.headers.items()), body))
                answer = server.info.get(f"{method} {path}")
                if answer is None:
                    answer = InfoReply(404, {"error": {"message": f"no route {method} {path}"}})
                reply = answer if isinstance(answer, InfoReply) else InfoReply(200, answer)
                self._json(reply.status, reply.payload)

        return Handler
