"""Build function for hatch-jupyter-builder: the JupyterLab sidebar inside every wheel and sdist.

pyproject.toml's ``[tool.hatch.build.hooks.jupyter-builder]`` calls :func:`build` when a wheel or sdist
is built from a checkout. It runs scripts/build-labextension (npm install, event types generated from
``nbagent events-schema``, tsc, jupyter-builder; quick when nothing changed), with the build
environment's Python, so a clean checkout needs only node and npm. The hook's ensured targets then
refuse to write a wheel without the built extension. A wheel built from our sdist reuses the extension
the sdist carries (skip-if-exists), and an editable install skips the build: scripts/bootstrap builds
and links the extension itself (and can skip it: NBAGENT_BOOTSTRAP_SIDEBAR=0).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build-labextension"


class LabextensionBuildError(RuntimeError):
    """The sidebar could not be built, so no wheel is written."""


def build(target_name: str, version: str, **_kwargs: str) -> None:
    if version == "editable":
        print("nbagent: editable install: the sidebar is built by scripts/bootstrap", file=sys.stderr)
        return
    env = {**os.environ, "NBAGENT_PYTHON": sys.executable}
    result = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        message = (
            f"nbagent: building the {target_name} needs the JupyterLab sidebar, and building it failed "
            f"(scripts/build-labextension exited {result.returncode}; its output is above).\n"
            "  fix: install node (>= 18) and npm (Debian: apt-get install nodejs npm; elsewhere "
            "https://nodejs.org), then build again; or install nbagent from a released wheel, which "
            "carries the sidebar prebuilt."
        )
        print(message, file=sys.stderr)
        raise LabextensionBuildError(message)
