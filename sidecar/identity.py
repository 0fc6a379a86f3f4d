"""How the sidecar proves who it is to the operator: a bearer token from one of three sources.

* `FileToken` (`--identity kubernetes`, the default): a projected ServiceAccount token
  with the AgentOps audience. The kubelet rotates it well before it expires by writing
  a new timestamped directory and renaming the `..data` symlink over the old one, so
  the file is looked at (one `stat`) on every call and read again whenever its mtime,
  size or inode changed. Never cached only at start: a token read once would expire
  under a long-running sidecar.
* `GoogleIdToken` (`--identity google`, Cloud Run): a Google-signed ID token for the
  audience, from the metadata server through google-auth. Fetched in a thread (the
  client blocks), once for all concurrent callers, and kept until 5 minutes before
  its `exp`, so a fresh token is in hand before the operator would refuse the old one.
* `StaticToken` (`--identity static`): the shared token of old. Weaker: every sidecar
  holding it can speak for every agent. Only for sidecars that can have neither
  identity.

A token that cannot be had raises `TokenUnavailable`, naming the file or the metadata
server; the operator link reports it as its problem and retries with backoff, so a
sidecar started before the kubelet wrote the token does not crash-loop.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from agentops.errors import AgentOpsError
from agentops_sidecar.settings import SidecarSettings

if TYPE_CHECKING:
    from google.auth.transport.requests import Request

# An ID token is replaced this long before its `exp`: Google's tokens live an hour, and
# a token fetched 5 minutes early survives the operator's clock skew and a slow fetch.
REFRESH_MARGIN_S = 300.0
# The metadata server's host as google-auth finds it (it reads these once, at import).
_METADATA_HOST_VARIABLES = ("GCE_METADATA_HOST", "GCE_METADATA_ROOT")
_METADATA_DEFAULT_HOST = "metadata.google.internal"


class TokenUnavailable(AgentOpsError):
    """No token to send right now: the file is missing or empty, or the metadata server failed."""


class TokenSource(Protocol):
    async def token(self) -> str:
        """The bearer token to send with the next request; raises TokenUnavailable."""
        ...


class FileToken:
    """A token file that is rotated in place (a projected ServiceAccount token)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) of what _token was read from
        self._token = ""

    async def token(self) -> str:
        # A stat and, after a rotation, a read of a few hundred bytes from the kubelet's
        # tmpfs: microseconds, not worth a thread per request.
        try:
            stat = os.stat(self.path)  # follows the ..data symlink to the current file
            seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if seen != self._seen:
                # `seen` is from before the read: a rotation during it changes the stat
                # again, so the next call reads once more rather than keeping a stale token.
                with open(self.path, encoding="utf-8") as file:
                    self._token = file.read().strip()
                self._seen = seen
        except OSError as exc:
            raise TokenUnavailable(f"cannot read the identity token {self.path}: {exc.strerror or exc}") from exc
        if not self._token:
            raise TokenUnavailable(f"the identity token {self.path} is empty")
        return self._token


class StaticToken:
    """The shared token (--identity static): the same for every request."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token


class GoogleIdToken:
    """A Google-signed ID token from the metadata server (Cloud Run, GCE, GKE with Workload Identity)."""

    def __init__(self, audience: str, *, now: Callable[[], float] = time.time) -> None:
        self.audience = audience
        self._now = now  # wall clock: `exp` is a Unix time
        self._token: str | None = None
        self._refresh_at = 0.0
        self._fetching: asyncio.Future[str] | None = None
        self._transport: Request | None = None  # one requests session, reused across fetches
        self.fetches = 0

    @property
    def metadata_server(self) -> str:
        for name in _METADATA_HOST_VARIABLES:
            if os.environ.get(name):
                return os.environ[name]
        return _METADATA_DEFAULT_HOST

    async def token(self) -> str:
        if self._token is not None and self._now() < self._refresh_at:
            return self._token
        if self._fetching is None:
            # Single flight: every caller that finds the token stale awaits one fetch.
            self._fetching = asyncio.ensure_future(self._refresh())
            self._fetching.add_done_callback(self._fetched)
        # Shielded: a caller that is cancelled (its request timed out, the link stops)
        # must not cancel the fetch the other callers wait for.
        return await asyncio.shield(self._fetching)

    def _fetched(self, future: asyncio.Future[str]) -> None:
        self._fetching = None
        if not future.cancelled():
            future.exception()  # retrieved here, so an error nobody awaited any more is not logged as lost

    async def _refresh(self) -> str:
        token, claims = await asyncio.to_thread(self._fetch)
        now = self._now()
        expires = float(claims.get("exp", now))
        # Normally 5 minutes early; for a token that lives less than 10 minutes, at half
        # its remaining life, so a short-lived token does not mean a fetch per request.
        self._refresh_at = expires - min(REFRESH_MARGIN_S, max(0.0, expires - now) / 2)
        self._token = token
        return token

    def _fetch(self) -> tuple[str, dict[str, Any]]:
        """Blocking: one request to the metadata server's identity endpoint (run in a thread)."""
        # Imported here: only sidecars in this mode pay for requests and the crypto
        # libraries google-auth brings.
        from google.auth import exceptions, jwt
        from google.auth.compute_engine import IDTokenCredentials
        from google.auth.transport.requests import Request

        self.fetches += 1
        if self._transport is None:
            self._transport = Request()
        # The identity endpoint directly: no probe of the metadata server first and no
        # GOOGLE_APPLICATION_CREDENTIALS detour (as fetch_id_token does), since this mode
        # means "the workload's own service account". Unbound (bind_id_token=False): the
        # operator checks a bearer token and sees no client certificate to bind it to.
        credentials = IDTokenCredentials(
            None, self.audience, use_metadata_identity_endpoint=True, bind_id_token=False)
        try:
            credentials.refresh(self._transport)
            token = credentials.token
            if not isinstance(token, str):
                raise ValueError("the answer holds no token")
            claims = jwt.decode(token, verify=False)
        except (exceptions.GoogleAuthError, ValueError) as exc:
            raise TokenUnavailable(f"cannot get an ID token for audience {self.audience!r} from the metadata server "
                                   f"{self.metadata_server}: {exc}") from exc
        return token, dict(claims)


def token_source(settings: SidecarSettings) -> TokenSource:
    """The token source `settings.identity` names."""
    if settings.identity == "google":
        return GoogleIdToken(settings.token_audience)
    if settings.identity == "static":
        return StaticToken(settings.static_token)
    return FileToken(settings.identity_token_file)
