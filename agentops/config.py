"""Small pieces every component's settings share: flag → environment → default.

Each component keeps its own typed settings object (one config path, parsed once);
these helpers only make the three-step lookup and its error messages uniform.

A setting's default is stated once, on its settings dataclass; `defaults()` reads it
from there for the parser and for the `--help` text, so the two cannot disagree.

Durations on every command line are Go-style strings ("30s", "2m", "500ms"), read by
the one parser in agentops.durations. Some settings used to take a number of seconds
under a name ending in -seconds / _SECONDS; `DurationOption` still accepts those names,
and a bare number anywhere (read as seconds), and logs a warning saying what to write
instead. Logged rather than raised as a Python DeprecationWarning: the warning is for
the person running the command, and Python hides DeprecationWarnings by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
from pathlib import Path
from typing import Any

from agentops.durations import format_duration, parse_duration
from agentops.errors import ConfigError, InvalidField

MIN_TOKEN_LENGTH = 16
# A number without a unit: how the renamed settings took their durations (seconds).
_BARE_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")

log = logging.getLogger(__name__)


def env(name: str, default: str | None = None) -> str | None:
    """An environment variable, with empty treated as unset."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def defaults(settings_type: type[Any]) -> dict[str, Any]:
    """Field name → default of a settings dataclass, for the fields that have one."""
    found: dict[str, Any] = {}
    for f in dataclasses.fields(settings_type):
        if f.default is not dataclasses.MISSING:
            found[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            found[f.name] = f.default_factory()
    return found


def number(flag_value: Any, flag: str, env_name: str, default: float, minimum: float) -> float:
    """A flag's value, else the environment variable's, else `default`; at least `minimum`.

    An error names where the bad value came from: `flag`, or `env_name`.
    """
    raw, label = (flag_value, flag) if flag_value is not None else (env(env_name), env_name)
    try:
        value = float(raw) if raw is not None else default
    except ValueError:
        raise ConfigError(f"{label}: {raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{label}: must be at least {minimum:g}, got {value:g}")
    return value


@dataclasses.dataclass(frozen=True)
class DurationOption:
    """A duration setting on a command line: a flag and its environment variable.

    `old_flag` and `old_env` are the names it had while it took a number of seconds;
    they still work, with a warning naming the new ones, as long as they are listed.
    """

    flag: str  # "--lease"
    env: str  # "AGENTOPS_LEASE"
    default_s: float  # from the settings dataclass (`defaults()`), never written here
    minimum_s: float
    help: str  # what it means; the variable, the default and the old names are added
    old_flag: str | None = None  # "--lease-seconds"
    old_env: str | None = None  # "AGENTOPS_LEASE_SECONDS"
    maximum_s: float | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def old_dest(self) -> str | None:
        return self.old_flag.removeprefix("--").replace("-", "_") if self.old_flag else None

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        old = " and ".join(name for name in (self.old_flag, self.old_env) if name)
        parser.add_argument(
            self.flag, dest=self.dest, default=None, metavar="DURATION",
            help=f"{self.help} (env {self.env}; default {format_duration(self.default_s)}"
                 + (f"; replaces {old}, which took seconds" if old else "") + ")",
        )
        if self.old_flag:
            # Hidden from --help and the configuration reference; read() warns when it is used.
            parser.add_argument(self.old_flag, dest=self.old_dest, default=None, help=argparse.SUPPRESS)

    def read(self, args: argparse.Namespace) -> float:
        """Seconds: the flag, else the old flag, else the variable, else the old variable, else the default."""
        sources = (
            (getattr(args, self.dest, None), self.flag),
            (getattr(args, self.old_dest, None) if self.old_dest else None, self.old_flag),
            (env(self.env), self.env),
            (env(self.old_env) if self.old_env else None, self.old_env),
        )
        for raw, source in sources:
            if raw is not None and source is not None:
                return self._parse(raw, source)
        return self.default_s

    def _parse(self, raw: str, source: str) -> float:
        bare = _BARE_SECONDS.fullmatch(raw) is not None
        try:
            seconds = float(raw) if bare else parse_duration(raw, source)
        except InvalidField as exc:
            raise ConfigError(str(exc)) from None
        if seconds < self.minimum_s:
            raise ConfigError(f"{source}: must be at least {format_duration(self.minimum_s)}, got {raw!r}")
        if self.maximum_s is not None and seconds > self.maximum_s:
            raise ConfigError(f"{source}: must be at most {format_duration(self.maximum_s)}, got {raw!r}")
        if bare or source in (self.old_flag, self.old_env):
            value = f"{raw}s" if bare else raw
            instead = f"{self.flag} {value}" if source.startswith("-") else f"{self.env}={value}"
            given = f"{source} {raw}" if source.startswith("-") else f"{source}={raw}"
            log.warning("%s is deprecated and still works for now; use %s (durations take a unit: ms, s, m, h)", given, instead)
        return seconds


def static_token(flag_path: str | None) -> str:
    """The opt-in static token, operator and sidecar alike: --static-token-file, else the file in
    AGENTOPS_STATIC_TOKEN_FILE, else the token in AGENTOPS_STATIC_TOKEN; "" when none is given."""
    path, label = (flag_path, "--static-token-file") if flag_path else (env("AGENTOPS_STATIC_TOKEN_FILE"), "AGENTOPS_STATIC_TOKEN_FILE")
    if path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{label} {path}: {exc.strerror}") from exc
    else:
        token, label = env("AGENTOPS_STATIC_TOKEN") or "", "AGENTOPS_STATIC_TOKEN"
    if token and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{label}: the token has {len(token)} characters; at least {MIN_TOKEN_LENGTH} are required")
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
