"""The layers of DESIGN.md, enforced: each module imports only its own layer and the ones below, and
module-level imports form no cycle. Every import counts, also those inside functions and
``importlib.import_module("nbagent...")`` strings; only ``if TYPE_CHECKING:`` blocks are exempt.

foundation    core: messages, events, errors, config, permission types, scrub, private
services      providers, tools, permissions, store, ext
orchestration core: session, loop, commands, permission broker, context
front-ends    cli, jupyter, demo, and the package root (the ``%load_ext nbagent`` entry point)
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbagent

PACKAGE = Path(nbagent.__file__).parent
FOUNDATION = {
    "nbagent.core",
    "nbagent.core.messages",
    "nbagent.core.events",
    "nbagent.core.errors",
    "nbagent.core.config",
    "nbagent.core.permission_types",
    "nbagent.core.scrub",
    "nbagent.core.secret_sources",
    "nbagent.core.private",
    "nbagent.core.text",
    "nbagent.core.log",
}
SERVICES = ("nbagent.providers", "nbagent.tools", "nbagent.permissions", "nbagent.store", "nbagent.ext")
# the package root is the `%load_ext nbagent` entry point
FRONT_ENDS = ("nbagent", "nbagent.cli", "nbagent.cli_render", "nbagent.cli_chat", "nbagent.jupyter", "nbagent.demo",
              "nbagent.__main__", "nbagent.labextension")  # fmt: skip
NAMES = ("foundation", "services", "orchestration", "front-ends")


def layer(module: str) -> int:
    if module in FOUNDATION:
        return 0
    if module.startswith(tuple(p + "." for p in SERVICES)) or module in SERVICES:
        return 1
    if module.startswith(tuple(p + "." for p in FRONT_ENDS[1:])) or module in FRONT_ENDS:
        return 3
    if module.startswith("nbagent.cli"):  # cli_render, cli_chat, cli_session, ...
        return 3
    return 2  # the rest of nbagent.core: session, loop, commands, the broker, context


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        if "sample_repo" in path.parts:
            continue
        out[module_name(path)] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The nbagent module an import names (``nbagent.core.config.Config`` -> ``nbagent.core.config``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                ids |= {id(n) for n in ast.walk(child)}
    return ids


def imports(module: str, path: Path, known: dict[str, Path], *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_blocks(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes = list(ast.iter_child_nodes(tree)) if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif (
            not top_level_only
            and isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("nbagent.")
            and " " not in node.value
        ):
            target = _resolve(node.value, known)
            if target not in (None, "nbagent"):  # "nbagent.json" is a file name, not a module
                names = [node.value]
        for name in names:
            if name == "nbagent" or name.startswith("nbagent."):
                target = _resolve(name, known)
                if target is not None and target != module:
                    found.add(target)
    return found


def test_each_module_imports_only_its_layer_and_below() -> None:
    known = _modules()
    problems = []
    for module, path in sorted(known.items()):
        for target in sorted(imports(module, path, known)):
            if layer(target) > layer(module):
                problems.append(
                    f"{module} ({NAMES[layer(module)]}) imports {target} ({NAMES[layer(target)]})"
                )
    assert not problems, "\n".join(problems)


def test_core_services_never_import_front_ends() -> None:
    known = _modules()
    for module, path in known.items():
        if layer(module) < 3:
            bad = [
                t for t in imports(module, path, known) if t.startswith(("nbagent.jupyter", "nbagent.cli"))
            ]
            assert not bad, f"{module} imports {bad}"


def test_no_import_cycles_at_module_level() -> None:
    known = _modules()
    graph = {m: imports(m, p, known, top_level_only=True) for m, p in known.items()}
    # a package's __init__ importing its own submodules is not a cycle worth reporting
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :]
                if not all(c == nxt or c.startswith(nxt + ".") or nxt.startswith(c + ".") for c in cycle):
                    cycles.append([*cycle, nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The test above must be able to fail: an import hidden in a function is found."""
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from nbagent.jupyter import agent\n    return agent\n")
    known = {"nbagent.tools.m": path, "nbagent.jupyter": path, "nbagent.jupyter.agent": path}
    assert "nbagent.jupyter.agent" in imports("nbagent.tools.m", path, known)
    assert layer("nbagent.tools.m") < layer("nbagent.jupyter.agent")
