"""Small pieces every component's settings share: flag → environment → default.

Each component keeps its own typed settings object (one config path, parsed once);
these helpers only make the three-step lookup and its error messages uniform.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agentops.errors import ConfigError

MIN_TOKEN_LENGTH = 16


def env(name: str, default: str | None = None) -> str | None:
    """An environment variable, with empty treated as unset."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def number(flag: Any, env_name: str, default: float, minimum: float, *, name: str | None = None) -> float:
    """A flag's value, else the environment variable's, else `default`; at least `minimum`."""
    raw = flag if flag is not None else env(env_name)
    label = name or env_name
    try:
        value = float(raw) if raw is not None else default
    except ValueError:
        raise ConfigError(f"{label}: {raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{label}: must be at least {minimum:g}, got {value:g}")
    return value


def bearer_token(token_file: str | None) -> str:
    """The shared operator↔sidecar token: --token-file / AGENTOPS_API_TOKEN_FILE, else AGENTOPS_API_TOKEN."""
    path = token_file or env("AGENTOPS_API_TOKEN_FILE")
    if path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"--token-file {path}: {exc.strerror}") from exc
    else:
        token = env("AGENTOPS_API_TOKEN") or ""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"a bearer token of at least {MIN_TOKEN_LENGTH} characters is required: --token-file or AGENTOPS_API_TOKEN")
    return token


def listen_address(value: str, flag: str, *, default_host: str | None = None) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:PORT) → (host, port), the port 0..65535.

    An empty host (":8080") means `default_host`, or is refused when there is none.
    """
    host, sep, port = value.rpartition(":")
    if not host and default_host is not None:
        host = default_host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{flag}: {value!r} is not HOST:PORT with a port from 0 to 65535 (e.g. 0.0.0.0:8090 or [::]:8090)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)
