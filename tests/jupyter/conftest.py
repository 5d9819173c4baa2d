"""A real kernel per test, with nbagent loaded (``start_kernel``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nbagent.providers.scripted import ScriptedModelServer
from tests.jupyter.harness import Kernel, python_env

StartKernel = Callable[..., Kernel]


@pytest.fixture
def start_kernel(tmp_path: Path) -> Iterator[StartKernel]:
    kernels: list[Kernel] = []

    def start(server: ScriptedModelServer | None = None, **env: str) -> Kernel:
        full = python_env()
        if server is not None:
            full.update({"NBAGENT_MODEL": "openai/scripted", "NBAGENT_API_BASE": server.openai_base})
        full.update(env)
        kernel = Kernel(tmp_path, full)
        kernels.append(kernel)
        ex = kernel.run("%load_ext nbagent")
        assert ex.status == "ok", ex.messages
        return kernel

    yield start
    for kernel in kernels:
        kernel.close()
