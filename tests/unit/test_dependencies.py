"""The distribution's dependencies are honest: complete, and free of the `kubernetes` client.

Complete: every third-party module the product packages import is a dependency
declared in pyproject.toml's `[project] dependencies` (not only in the test extra, and
not merely pulled in by another package), so `pip install agentops` gives a command
that runs. Free of the client: kopf imports the `kubernetes` packages whenever they are
importable (+20–50 MB per operator process), so they must not be in the dependency
closure of this distribution at all.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"kubernetes", "kubernetes-asyncio"}
# Source folder → import name of every package the distribution ships.
PRODUCT = {"agentops": "agentops", "operator": "agentops_operator", "sidecar": "agentops_sidecar",
           "agents": "agentops_agents", "ui": "agentops_ui"}


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


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


def _declared() -> set[str]:
    """pyproject.toml's product dependencies (read from the file: installed metadata can be stale)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return {_name(r) for r in project["dependencies"]}


@cache
def _owners_by_module() -> dict[str, frozenset[str]]:
    """Dotted module name → the installed distributions whose files hold it.

    Read from the distributions' file lists, because a namespace package such as
    `google` is shared: `google.auth` and `google.cloud.firestore` come from different
    distributions.
    """
    owners: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        for file in dist.files or ():
            parts = file.parts
            if not parts or file.suffix != ".py" or ".." in parts:
                continue
            module = parts[:-1] if parts[-1] == "__init__.py" else (*parts[:-1], file.stem)
            owners.setdefault(".".join(module), set()).add(_name(dist.metadata["Name"]))
    return {module: frozenset(names) for module, names in owners.items()}


def _owners(module: str) -> frozenset[str]:
    """The distributions providing `module`, or its nearest parent that is a module."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        found = _owners_by_module().get(".".join(parts[:end]))
        if found:
            return found
    return frozenset()


def _third_party_imports() -> dict[str, set[str]]:
    """Every module the product packages import from outside the standard library and themselves,
    with the files that import it (`from a.b import c` counts as a.b.c: c may be a module)."""
    found: dict[str, set[str]] = {}
    for folder in PRODUCT:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [f"{node.module}.{alias.name}" for alias in node.names]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in PRODUCT.values():
                        found.setdefault(module, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def test_runtime_dependency_closure_has_no_kubernetes_client() -> None:
    closure = _closure("agentops")
    assert {"kopf", "pykube-ng", "aiohttp"} <= closure  # the walk really followed the graph
    assert not closure & FORBIDDEN, f"pulled in: {sorted(closure & FORBIDDEN)}"


def test_every_third_party_import_of_the_product_is_a_declared_dependency() -> None:
    imports = _third_party_imports()
    assert {"aiohttp.web", "kopf", "cryptography.x509"} <= set(imports)  # the scan really read the sources
    declared = _declared()
    undeclared: dict[str, set[str]] = {}  # distribution → the files importing it
    for module, files in sorted(imports.items()):
        owners = _owners(module)
        assert owners, f"{module} (imported by {', '.join(sorted(files))}) is not installed"
        if not owners & declared:
            undeclared.setdefault(" or ".join(sorted(owners)), set()).update(files)
    assert not undeclared, "add to [project] dependencies in pyproject.toml: " + "; ".join(
        f"{dist} (imported by {', '.join(sorted(files))})" for dist, files in sorted(undeclared.items()))


def test_the_owner_lookup_tells_a_shared_namespace_apart() -> None:
    assert _owners("google.cloud.firestore") == {"google-cloud-firestore"}
    assert _owners("google.auth.credentials") == {"google-auth"}
    assert _owners("yaml.SafeLoader") == {"pyyaml"}  # a name inside a module: its module's owner
