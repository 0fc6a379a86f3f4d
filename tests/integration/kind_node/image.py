"""The image `agentops:dev` without a container runtime: read off the Dockerfile.

What the final stage declares - ENTRYPOINT, CMD, ENV, USER, WORKDIR, and the virtualenv
it copies in - is read from the Dockerfile itself, so this stand-in cannot drift from
it. The virtualenv the image would carry at /opt/agentops is this checkout's `.venv`
(the project installed into it, as the builder stage installs the wheel): PATH entries
under the image's virtualenv are mapped onto it. Nothing is built; the host's root
filesystem plays the image's (read-only to the containers, see launcher.py).
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
# The base image's PATH (python:3.11-slim), which the Dockerfile's ENV PATH extends.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Image:
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    workdir: str
    # Host directories the image's files are, for the launcher to keep reachable.
    paths: list[str]


def _final_stage(lines: list[str]) -> list[str]:
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    return lines[starts[-1]:]


def _logical_lines(text: str) -> list[str]:
    """Instructions with continuations joined and comments dropped."""
    out: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):  # also inside a continuation, as Docker reads it
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            out.append(current.strip())
        current = ""
    return out


def load(venv: Path = REPO_ROOT / ".venv", dockerfile: Path = REPO_ROOT / "Dockerfile") -> Image:
    stage = _final_stage(_logical_lines(dockerfile.read_text()))
    found: dict[str, str] = {}
    env: dict[str, str] = {"PATH": BASE_PATH}
    image_venv = ""
    for line in stage:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                env[name] = re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: env.get(m.group(1) or m.group(2), ""), value)
        elif keyword == "COPY" and "--from=" in rest:
            image_venv = rest.split()[-1]
        elif keyword in ("ENTRYPOINT", "CMD", "USER", "WORKDIR"):
            found[keyword] = rest.strip()
    if not image_venv:
        raise ValueError(f"{dockerfile}: no COPY --from=... of the virtualenv in the final stage")
    env["PATH"] = env["PATH"].replace(image_venv, str(venv))
    uid, _, gid = found["USER"].partition(":")
    return Image(
        entrypoint=json.loads(found["ENTRYPOINT"]),
        cmd=json.loads(found["CMD"]),
        env=env,
        uid=int(uid),
        gid=int(gid or uid),
        workdir=found.get("WORKDIR", "/"),
        paths=[str(venv), str(Path(sys.base_prefix).resolve()), str(REPO_ROOT)],
    )
