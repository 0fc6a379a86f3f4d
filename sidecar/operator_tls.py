"""The trust the sidecar places in the operator's https certificate.

With no CA file, the system trust store decides (an operator behind a publicly
trusted certificate). With one (`--operator-ca-file`, by default the mounted
`/var/run/secrets/agentops.dev/ca/ca.crt` when it exists), the operator's certificate
must chain to that bundle. The bundle usually comes from a ConfigMap, which the kubelet
updates in place when the operator's CA rotates; so the file is looked at (one `stat`)
whenever a context is asked for, and a changed file is loaded into a new context: a
rotated CA needs no sidecar restart.

A file that cannot be read or parsed keeps the context loaded before it, with the
problem recorded for /v1/state and the link's problem; a half-written bundle must not
cut the sidecar off an operator it could verify a moment ago. When nothing was ever
loaded, the context trusts no CA at all: every operator is refused rather than checked
against the system's CAs, which nobody asked for.
"""

from __future__ import annotations

import logging
import os
import ssl

log = logging.getLogger(__name__)


class OperatorTLS:
    def __init__(self, ca_file: str | None) -> None:
        self.ca_file = ca_file
        self.problem: str | None = None
        self.loads = 0  # contexts built from the file, for tests and /v1/state
        self._seen: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) last loaded or tried
        self._context: ssl.SSLContext | None = None
        if ca_file is not None:
            self.context()  # load now, so a broken bundle shows in the start-up log

    def context(self) -> ssl.SSLContext | bool:
        """What aiohttp's `ssl=` takes: True for the default verification, else a context from the CA file."""
        if self.ca_file is None:
            return True
        try:
            stat = os.stat(self.ca_file)
        except OSError as exc:
            self._seen = None  # whatever appears next is loaded
            self._failed(f"cannot read the operator CA file {self.ca_file}: {exc.strerror or exc}")
            return self._current()
        seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if seen != self._seen:
            # Recorded before loading: a broken file is tried once, not on every request;
            # the next change to it is tried again.
            self._seen = seen
            try:
                # Reading a small PEM file and parsing it: on the event loop, but only
                # when the file changed.
                context = ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ssl.SSLError, ValueError) as exc:
                self._failed(f"cannot load the operator CA file {self.ca_file}: {exc}")
            else:
                self._context, self.problem = context, None
                self.loads += 1
                log.info("operator CA bundle loaded from %s", self.ca_file, extra={"caFile": self.ca_file, "loads": self.loads})
        return self._current()

    def _failed(self, problem: str) -> None:
        if problem != self.problem:
            kept = "keeping the bundle loaded before" if self.loads else "refusing every operator until it loads"
            log.warning("%s; %s", problem, kept)
        self.problem = problem

    def _current(self) -> ssl.SSLContext:
        if self._context is None:
            # Verifies hostnames and requires a certificate, with no CA loaded: nothing passes.
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return self._context
