"""Finding files and text: ``glob`` and ``grep``.

Both use ripgrep when it is on PATH (fast, respects .gitignore) and fall back to pure Python
(which skips VCS/dependency folders, hidden folders and what simple .gitignore rules exclude).
Neither follows symbolic links.

Every path is checked: the folder (or file) searched is asked for with its real location, so a path
outside the project asks ``external_directory`` and a protected file asks. Every file a recursive grep
would read is screened first (``read``): a protected file (``.env``, keys), a file outside the project
or one a rule denies is not opened, and the result says which were left out so the model can read
them with the read tool, which asks. glob lists names: a protected file's name is listed (names are
not secrets, its content is), but a path a ``glob`` rule denies is not.

The tools live in :mod:`nbagent.tools.search_glob` (``glob`` and the shared path helpers) and
:mod:`nbagent.tools.search_grep` (``grep``); this module keeps their names importable from one place.
"""

from __future__ import annotations

from nbagent.tools.ripgrep import rg_path
from nbagent.tools.search_glob import GLOB_CHARS, MAX_GLOB_RESULTS, MAX_SCAN_FILES, GlobParams, GlobTool
from nbagent.tools.search_grep import (
    FALLBACK_MAX_FILE_BYTES,
    MAX_EXCLUDES,
    MAX_GREP_CANDIDATES,
    MAX_GREP_FILES,
    MAX_GREP_LINES,
    MAX_LINE_CHARS,
    GrepParams,
    GrepTool,
    OutputMode,
)
from nbagent.tools.walk import glob_regex, walk_files

__all__ = [
    "FALLBACK_MAX_FILE_BYTES",
    "GLOB_CHARS",
    "MAX_EXCLUDES",
    "MAX_GLOB_RESULTS",
    "MAX_GREP_CANDIDATES",
    "MAX_GREP_FILES",
    "MAX_GREP_LINES",
    "MAX_LINE_CHARS",
    "MAX_SCAN_FILES",
    "GlobParams",
    "GlobTool",
    "GrepParams",
    "GrepTool",
    "OutputMode",
    "glob_regex",
    "rg_path",
    "walk_files",
]
