"""A sample agent's settings: CLI flag → environment variable → default, parsed once.

    agentops agent chat|summary [--host H] [--port P] [--gemini-api-key-file PATH]
        [--gemini-base-url URL] [--gemini-model NAME] [--model-timeout DURATION]
        [--log-level LEVEL]

The Gemini key comes from a file (a mounted Secret) or the GEMINI_API_KEY variable,
never from a flag: command lines are visible to every user of the machine through
`ps`. Without a key the agent runs the offline model. The key is redacted wherever
settings are shown, and an error about it never repeats it.

Every bad value is a ConfigError naming where it came from (the flag, or the
environment variable when no flag was given) and what is allowed. Each default is
stated once, on the dataclass below; the parser and `--help` read it from there.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from agentops.config import DurationOption, defaults
from agentops.errors import ConfigError

AgentKind = Literal["chat", "summary"]
KINDS: tuple[AgentKind, ...] = ("chat", "summary")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Model names go into the URL path, so only the characters Gemini's names use.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# An API key is one printable ASCII token; anything else would corrupt the header.
_API_KEY = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class AgentSettings:
    kind: AgentKind
    host: str = "127.0.0.1"
    port: int = 8000  # 0 picks a free port; the bound one is logged
    gemini_api_key: str = field(default="", repr=False)  # empty: the offline model
    gemini_base_url: str = "https://generativelanguage.googleapis.com"  # without a trailing slash
    gemini_model: str = "gemini-2.0-flash"
    # Total time for one Gemini request. Gemini usually answers in seconds; 30 s leaves
    # room for long summaries while staying below the 60 s many load balancers and
    # proxies allow a request.
    model_timeout_s: float = 30.0
    log_level: str = "INFO"

    @property
    def model(self) -> str:
        """Which model answers: "gemini" when a key is configured, else "offline"."""
        return "gemini" if self.gemini_api_key else "offline"

    def redacted(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["gemini_api_key"] = "<redacted>" if self.gemini_api_key else "<unset>"
        return shown


DEFAULTS = defaults(AgentSettings)

MODEL_TIMEOUT = DurationOption(
    "--model-timeout", "AGENTOPS_MODEL_TIMEOUT", DEFAULTS["model_timeout_s"], minimum_s=0.001,
    help="how long one Gemini request may take before the agent answers 504",
    old_env="AGENTOPS_MODEL_TIMEOUT_SECONDS")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentops agent",
        description="A sample agent: chat or summary, over Gemini when a key is configured, offline otherwise.",
    )
    d = DEFAULTS
    p.add_argument("kind", choices=KINDS, help="which agent to run")
    p.add_argument("--host", default=None, help=f"address to listen on (env AGENTOPS_AGENT_HOST; default {d['host']})")
    p.add_argument("--port", default=None,
                   help=f"port to listen on, 0 for any free one (env AGENTOPS_AGENT_PORT; default {d['port']})")
    p.add_argument("--gemini-api-key-file", default=None, metavar="PATH",
                   help="file holding the Gemini API key, e.g. a mounted Secret (env GEMINI_API_KEY_FILE; "
                        "or the key itself in GEMINI_API_KEY); without a key the offline model answers")
    p.add_argument("--gemini-base-url", default=None, metavar="URL",
                   help=f"Gemini REST endpoint: the sidecar's model gateway, e.g. http://127.0.0.1:9902/gemini, so that "
                        f"model calls are measured and model faults reach them (env GOOGLE_GEMINI_BASE_URL, the "
                        f"google-genai SDK's own name, or GEMINI_BASE_URL; default {d['gemini_base_url']})")
    p.add_argument("--gemini-model", default=None, metavar="NAME",
                   help=f"Gemini model (env GEMINI_MODEL; default {d['gemini_model']})")
    MODEL_TIMEOUT.add_to(p)
    p.add_argument("--log-level", default=None,
                   help=f"{', '.join(LOG_LEVELS)} (env AGENTOPS_LOG_LEVEL; default {d['log_level']})")
    return p


def _pick(flag_value: str | None, flag: str, env: str) -> tuple[str | None, str]:
    """The raw value (flag first, then a non-empty env variable) and where it came from."""
    if flag_value is not None:
        return flag_value, flag
    value = os.environ.get(env)
    return (value, env) if value else (None, flag)


def _api_key(args: argparse.Namespace) -> str:
    path, source = _pick(args.gemini_api_key_file, "--gemini-api-key-file", "GEMINI_API_KEY_FILE")
    if path is not None:
        try:
            key = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{source} {path}: cannot read the key file ({exc.strerror})") from exc
        if not key:
            raise ConfigError(f"{source} {path}: the file is empty; put the Gemini API key in it")
    else:
        key, source = os.environ.get("GEMINI_API_KEY", "").strip(), "GEMINI_API_KEY"
    if key and not _API_KEY.fullmatch(key):
        raise ConfigError(f"{source}: the Gemini API key must be one token of printable ASCII (no spaces or line breaks)")
    return key


def _base_url(args: argparse.Namespace) -> str:
    raw, source = _pick(args.gemini_base_url, "--gemini-base-url", "GOOGLE_GEMINI_BASE_URL")
    if raw is None:
        raw, source = _pick(None, "--gemini-base-url", "GEMINI_BASE_URL")
    url = (raw or DEFAULTS["gemini_base_url"]).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{source}: {raw!r} is not an http(s) URL such as {DEFAULTS['gemini_base_url']}")
    return url


def _model_name(args: argparse.Namespace) -> str:
    raw, source = _pick(args.gemini_model, "--gemini-model", "GEMINI_MODEL")
    # The API's resource names are "models/<name>"; accept that form too.
    name = (raw or DEFAULTS["gemini_model"]).strip().removeprefix("models/")
    if not _MODEL_NAME.fullmatch(name):
        raise ConfigError(f"{source}: {raw!r} is not a model name such as {DEFAULTS['gemini_model']} (letters, digits, '.', '_', '-')")
    return name


def _port(args: argparse.Namespace) -> int:
    raw, source = _pick(args.port, "--port", "AGENTOPS_AGENT_PORT")
    if raw is None:
        return int(DEFAULTS["port"])
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{source}: {raw!r} is not a port number; allowed 0..65535 (0 picks a free port)") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{source}: {port} is out of range; allowed 0..65535 (0 picks a free port)")
    return port


def from_args(args: argparse.Namespace) -> AgentSettings:
    host, host_source = _pick(args.host, "--host", "AGENTOPS_AGENT_HOST")
    if host is not None and not host.strip():
        raise ConfigError(f"{host_source}: must not be empty; e.g. 127.0.0.1 or 0.0.0.0")
    level, level_source = _pick(args.log_level, "--log-level", "AGENTOPS_LOG_LEVEL")
    log_level = (level or DEFAULTS["log_level"]).upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"{level_source}: {level!r} is not a log level; allowed {', '.join(LOG_LEVELS)}")
    return AgentSettings(
        kind=args.kind,
        host=(host or DEFAULTS["host"]).strip(),
        port=_port(args),
        gemini_api_key=_api_key(args),
        gemini_base_url=_base_url(args),
        gemini_model=_model_name(args),
        model_timeout_s=MODEL_TIMEOUT.read(args),
        log_level=log_level,
    )
