"""The operator's environment must not pull in the `kubernetes` client packages.

kopf imports them whenever they are importable (+20–50 MB per operator process), so
they must not be in the dependency closure of this distribution at all.
"""

from __future__ import annotations

import re
from importlib import metadata

FORBIDDEN = {"kubernetes", "kubernetes-asyncio"}


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(root: str) -> set[str]:
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        # Extras (tests, docs) of dependencies are not installed with them: skip them.
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return seen


def test_runtime_dependency_closure_has_no_kubernetes_client() -> None:
    closure = _closure("agentops")
    assert {"kopf", "pykube-ng", "aiohttp"} <= closure  # the walk really followed the graph
    assert not closure & FORBIDDEN, f"pulled in: {sorted(closure & FORBIDDEN)}"
