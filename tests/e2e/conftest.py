"""A real ``jupyter lab`` (or Notebook 7: ``app="notebook"``) on 127.0.0.1 (random port, token auth,
temporary root and config) with the built nbagent extension, and Debian's Chromium driven by Playwright
(never a downloaded browser).

Prerequisites come from ``scripts/bootstrap``: the ``chromium`` package and the built extension
(``scripts/build-labextension``). Without them the tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("NBAGENT_CHROMIUM", "/usr/bin/chromium"))
BUILT = REPO / "nbagent" / "labextension"
ARTIFACTS = REPO / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _missing() -> str:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (scripts/bootstrap installs Debian's chromium)"
    if not (BUILT / "package.json").exists():
        return "the labextension is not built (scripts/build-labextension)"
    try:
        import jupyterlab  # type: ignore[import-untyped]  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install -e '.[dev]')"
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing()
    if not reason or os.environ.get("CI"):
        return  # under CI a missing prerequisite fails the tests
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def notebook_json(cells: list[str]) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell{i}",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for i, source in enumerate(cells)
        ],
    }


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    app: str = "lab"  # "lab" (JupyterLab 4) or "notebook" (Notebook 7)

    def page_url(self, path: str) -> str:
        if self.app == "notebook":
            return f"{self.url}/notebooks/{path}?token={self.token}"
        return f"{self.url}/lab/tree/{path}?token={self.token}"

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=b"" if method == "POST" else None,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None


def start_lab(base: Path, root: Path, env_extra: dict[str, str], app: str = "lab") -> Lab:
    """``jupyter lab`` (``app="notebook"``: Notebook 7) with its own config, data and runtime folders;
    the extension and a python3 kernelspec (this interpreter) come first on JUPYTER_PATH; the
    announcements popup is off."""
    config, data, runtime, share = (base / n for n in ("config", "data", "runtime", "share"))
    for d in (config / "labconfig", data, runtime, share / "labextensions", share / "kernels" / "python3"):
        d.mkdir(parents=True, exist_ok=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    (share / "labextensions" / "nbagent").symlink_to(BUILT, target_is_directory=True)
    (share / "kernels" / "python3" / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            }
        )
    )
    port = free_port()
    token = secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        {
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_DATA_DIR": str(data),
            "JUPYTER_RUNTIME_DIR": str(runtime),
            "JUPYTER_PATH": str(share),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.update(env_extra)
    args = [
        sys.executable,
        "-m",
        "notebook" if app == "notebook" else "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    if app == "notebook":
        args.append(f"--JupyterNotebookApp.workspaces_dir={base / 'workspaces'}")
    else:
        args += [
            f"--LabApp.workspaces_dir={base / 'workspaces'}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.news_url=",
        ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    log = base / f"jupyter-{app}.log"
    process = subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=root)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, process, log, app)
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter {app} exited:\n{log.read_text()[-4000:]}")
        try:
            lab.api("/api/status")
            return lab
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"jupyter {app} did not start in 60s:\n{log.read_text()[-4000:]}")


def stop_lab(lab: Lab) -> None:
    lab.process.terminate()
    try:
        lab.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        lab.process.kill()
        lab.process.wait(timeout=5)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium for one test. Function-scoped on purpose: Playwright's sync API runs an event loop in
    this thread while it is open, which must not overlap the suite's async fixtures (set up before
    this one, torn down after it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def lab_factory(tmp_path: Path) -> Iterator[Any]:
    labs: list[Lab] = []

    def make(files: dict[str, str | dict[str, Any]], env: dict[str, str], app: str = "lab") -> Lab:
        root = tmp_path / "work"
        root.mkdir(exist_ok=True)
        for name, content in files.items():
            text = content if isinstance(content, str) else json.dumps(content, indent=1)
            (root / name).write_text(text)
        lab = start_lab(tmp_path / app, root, env, app)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        stop_lab(lab)
        if os.environ.get("NBAGENT_E2E_KEEP_LOG"):
            shutil.copy(lab.log, ARTIFACTS / lab.log.name)
