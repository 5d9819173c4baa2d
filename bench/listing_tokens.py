"""Prompt tokens added to every request by the subagent listing (task tool) and the skill listing.

Ten agents and ten skills with realistic descriptions (the lengths Claude Code's and OpenCode's
published agents and Anthropic's skills use) are written to real files, loaded through
``load_agents`` / ``load_skills`` and listed with the default caps. Tokens: nbagent's estimator
(chars / 4, what the context budget uses) and, when its data is at hand, the cl100k tokenizer.

.venv/bin/python -m bench.listing_tokens
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from nbagent.core.config import Config
from nbagent.core.context.budget import Estimator
from nbagent.ext.agents import load_agents
from nbagent.ext.skills import load_skills, skill_listing

TARGET = 300
AGENT_HEADER = "Available subagents (subagent_type: when to use):\n"
SKILL_HEADER = "Skills (load one with the skill tool when the task matches):\n"

AGENTS = {
    "code-reviewer": "Expert code review specialist. Proactively reviews code for quality, security, and"
    " maintainability. Use immediately after writing or modifying code.",
    "debugger": "Debugging specialist for errors, test failures, and unexpected behavior. Use proactively"
    " when encountering any issues.",
    "data-scientist": "Data analysis expert for SQL queries, BigQuery operations, and data insights. Use"
    " proactively for data analysis tasks and queries.",
    "test-runner": "Runs the test suite, isolates failing tests and reports the root cause with the"
    " smallest reproduction. Use after code changes.",
    "security-auditor": "Reviews code for vulnerabilities, secrets in the repository and unsafe"
    " dependencies. Use before merging changes that touch authentication or input handling.",
    "docs-writer": "Writes and maintains project documentation: README, API references and guides, in"
    " the project's existing style.",
    "refactorer": "Restructures code without changing behaviour: extracts functions, removes duplication"
    " and improves names, keeping tests green.",
    "perf-analyst": "Profiles slow code paths, measures before and after, and proposes targeted"
    " optimisations with numbers.",
    "migration-planner": "Plans database and API migrations step by step, with rollback paths and the"
    " order of deployment.",
    "frontend-developer": "Builds UI components with React and TypeScript, responsive layouts and"
    " accessibility; use for any frontend task.",
}

SKILLS = {
    "pdf": "Comprehensive PDF manipulation toolkit for extracting text and tables, creating new PDFs,"
    " merging/splitting documents, and handling forms. Use when Claude needs to fill in a PDF form or"
    " programmatically process, generate, or analyze PDF documents at scale.",
    "docx": "Document creation, editing, and analysis with support for tracked changes, comments,"
    " formatting preservation, and text extraction. Use when working with .docx files.",
    "xlsx": "Spreadsheet creation, editing, and analysis with support for formulas, formatting, data"
    " analysis, and visualization. Use when working with .xlsx, .xlsm, .csv or .tsv files.",
    "pptx": "Presentation creation, editing, and analysis. Use when working with .pptx files: creating"
    " presentations, modifying content, working with layouts, adding comments or speaker notes.",
    "webapp-testing": "Toolkit for interacting with and testing local web applications using Playwright."
    " Supports verifying frontend functionality, debugging UI behavior and capturing screenshots.",
    "mcp-builder": "Guide for creating high-quality MCP servers that enable LLMs to interact with external"
    " services through well-designed tools. Use when building MCP servers in Python or Node.",
    "changelog": "Writes a changelog entry from the commits since the last tag, grouped by kind, in the"
    " project's format. Use when preparing a release.",
    "release-notes": "Drafts user-facing release notes from merged pull requests and the changelog. Use"
    " when the user asks for release notes or an announcement.",
    "db-migrations": "Creates and reviews database migrations with Alembic, checks they are reversible and"
    " safe on large tables. Use when the schema changes.",
    "api-design": "Reviews and designs REST and GraphQL APIs: naming, pagination, errors and versioning."
    " Use when adding or changing endpoints.",
}


def _cl100k() -> object | None:
    try:
        import importlib.util

        import tiktoken

        spec = importlib.util.find_spec("litellm")
        for location in (spec.submodule_search_locations or []) if spec else []:
            cache = Path(location) / "litellm_core_utils" / "tokenizers"
            if cache.is_dir():
                os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache))
        return tiktoken.get_encoding("cl100k_base")
    except Exception:
        return None


def main() -> None:
    estimator = Estimator()
    encoding = _cl100k()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        (root / ".git").mkdir(parents=True)
        home = Path(tmp) / "home"
        os.environ["NBAGENT_CONFIG_DIR"] = str(home / ".config" / "nbagent")
        for name, description in AGENTS.items():
            path = root / ".claude" / "agents" / f"{name}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"---\nname: {name}\ndescription: {description}\n---\nYou are {name}.\n")
        for name, description in SKILLS.items():
            path = root / ".claude" / "skills" / name / "SKILL.md"
            path.parent.mkdir(parents=True)
            path.write_text(f"---\nname: {name}\ndescription: {description}\n---\n# {name}\n")
        agents = load_agents(root, Config(), home=home)
        custom = [a for a in agents.subagents() if not a.builtin]
        assert len(custom) == 10, [a.name for a in custom]
        only_custom = agents.model_copy(update={"agents": {a.name: a for a in custom}})
        agent_text = AGENT_HEADER + only_custom.listing()
        with_builtins = AGENT_HEADER + agents.listing()
        skills = load_skills(root, home=home)
        assert len(skills.skills) == 10
        skill_text = SKILL_HEADER + skill_listing(skills)

    rows = [
        ("10 agents", agent_text),
        ("10 agents + explore, general", with_builtins),
        ("10 skills", skill_text),
    ]
    print(f"{'listing':<30} {'chars':>6} {'est. tokens':>12} {'cl100k':>7}")
    for label, text in rows:
        exact = len(encoding.encode(text)) if encoding is not None else None  # type: ignore[attr-defined]
        print(f"{label:<30} {len(text):>6} {estimator.tokens(len(text)):>12} {exact if exact else '-':>7}")
    per = max(estimator.tokens(len(agent_text)), estimator.tokens(len(skill_text)))
    print(f"target: under {TARGET} tokens per listing of ten: {'met' if per < TARGET else 'NOT met'}")
    print("\n" + agent_text + "\n\n" + skill_text)


if __name__ == "__main__":
    main()
