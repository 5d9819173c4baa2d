"""`import nbagent` stays light, and the core never imports Jupyter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import nbagent

PACKAGE = Path(nbagent.__file__).parent
JUPYTER_FREE = ["core", "tools", "permissions", "providers", "ext", "store"]
FORBIDDEN = ("IPython", "ipywidgets", "ipykernel", "jupyter_server", "jupyter_client", "nbclient", "comm")
HEAVY = ("litellm", "rich", "httpx", "tree_sitter", "mcp", "openai")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_packages_import_nothing_from_jupyter() -> None:
    checked = 0
    for sub in JUPYTER_FREE:
        for path in (PACKAGE / sub).rglob("*.py"):
            if "sample_repo" in path.parts:
                continue
            bad = _imported_modules(path) & set(FORBIDDEN)
            assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"
            checked += 1
    assert checked > 10


def test_import_nbagent_loads_no_heavy_module() -> None:
    code = (
        "import sys, json, nbagent, nbagent.cli; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_session_modules_load_without_litellm() -> None:
    code = (
        "import sys, json; import nbagent.core.session, nbagent.tools; "
        "print(json.dumps('litellm' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False
