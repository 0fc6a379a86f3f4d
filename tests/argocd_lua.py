"""Runs the Argo CD health checks in manifests/argocd/ the way Argo CD runs them.

Argo CD evaluates a custom health check (argocd-cm `resource.customizations.health.*`)
in gopher-lua, a Lua 5.1, with only the base, table and package libraries and a
trimmed `os`; the object is the global `obj` (JSON arrays become 1-based tables, null
becomes nil), and the chunk's return value must be a table {status=..., message=...}
with a status from a fixed set. Here the same script runs in a Lua 5.1 from lupa with
the libraries Argo CD leaves out removed — the string library included, also as
methods on strings — so a script that passes here does not fail in Argo CD for
calling something it lacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lupa import lua51  # type: ignore[import-untyped]  # until types-lupa is a dev dependency

ARGOCD_DIR = Path(__file__).resolve().parents[1] / "manifests" / "argocd"
SCRIPTS = {"Agent": ARGOCD_DIR / "health-agent.lua", "Fault": ARGOCD_DIR / "health-fault.lua"}
# What Argo CD accepts from a script (anything else becomes Unknown).
STATUSES = frozenset({"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"})

_UNAVAILABLE = """
getmetatable("").__index = nil
string, io, debug, math, coroutine, dofile, loadfile = nil, nil, nil, nil, nil, nil, nil
os = {time = os.time, date = os.date, clock = os.clock}
"""


def health(obj: dict[str, Any], script: Path | None = None) -> dict[str, str]:
    """The health Argo CD would show for `obj` (its kind picks the script unless given)."""
    source = (script or SCRIPTS[obj["kind"]]).read_text()
    lua = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    lua.execute(_UNAVAILABLE)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(source)
    assert result is not None, "the script returned nothing"
    out = {str(k): str(v) for k, v in result.items()}
    assert set(out) <= {"status", "message"}, f"unexpected keys in the script's answer: {out}"
    assert out.get("status") in STATUSES, f"Argo CD would turn status {out.get('status')!r} into Unknown"
    return out
