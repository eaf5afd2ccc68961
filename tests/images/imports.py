"""Which modules a service needs, read from the source: its own package, the modules its image
command names, and every `services.*` module these import (at any depth, including imports inside
functions, and modules named in strings such as gunicorn's worker_class), transitively."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from devkit.stack import ROOT

DOTTED = re.compile(r"^services(\.\w+)+")


def module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _longest_module(dotted: str) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        if module_file(".".join(parts[:end])):
            return ".".join(parts[:end])
    return None


def _imports(name: str) -> tuple[set[str], set[str]]:
    """(services.* modules, other top-level names) that module `name` imports or names in a string."""
    path = module_file(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    ours, others = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and DOTTED.match(node.value):
            targets = [DOTTED.match(node.value).group(0)]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == "services":
                found = _longest_module(target)
                ours.update({found} if found else set())
            elif target and target.split(".")[0] not in sys.stdlib_module_names:
                others.add(target.split(".")[0])
    return ours, others


def needed(roots: set[str]) -> tuple[set[str], set[str]]:
    """(every services.* module reachable from `roots`, the third-party top-level names they import)."""
    seen, todo, third_party = set(), set(roots), set()
    while todo:
        name = todo.pop()
        seen.add(name)
        ours, others = _imports(name)
        third_party |= others
        todo |= ours - seen
    return seen, third_party


def service_roots(service: str, command: list[str]) -> set[str]:
    """The modules of services/<service> and those its image command names."""
    roots = set()
    for path in (ROOT / "services" / service).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        roots.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    for word in command:
        for match in re.findall(r"services(?:\.\w+)+", word):
            roots.add(_longest_module(match))
    return roots


# The web framework: only auth and the gateway ship it; the workers' and the janitor's locks do not.
WEB_FRAMEWORK = ("flask", "werkzeug", "flask_swagger_ui")
WITHOUT_WEB = ("converter", "notification", "janitor")


def entry_modules(service: str, command: list[str]) -> list[str]:
    """What the image command runs first: `python -m services.x` runs services.x.__main__."""
    named = {_longest_module(match) for word in command for match in re.findall(r"services(?:\.\w+)+", word)}
    return sorted(f"{name}.__main__" if module_file(f"{name}.__main__") else name for name in named if name)


def web_modules(loaded: list[str]) -> list[str]:
    """The web framework's modules among `loaded` (names of sys.modules)."""
    return sorted(name for name in loaded if name.split(".")[0] in WEB_FRAMEWORK)
