"""The real Cloud Firestore emulator (`gcloud emulators firestore start`) for integration tests.

`gcloud` is a Python program that runs a shell wrapper that runs java; signalling
only the process we started would leave java serving. So the emulator gets its own
session (process group) and stop() signals the whole group, SIGTERM then SIGKILL,
and waits until no process of it is left, which also frees the port for a restart
on the same port (the outage test). The emulator keeps its data in memory: after a
restart it is empty.

A stray warning about Java 21 in the log is harmless (the emulator runs on Java 17).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from operator_harness import alive, free_port, wait_for

INSTALL_HINT = (
    "the Firestore emulator tests need the Google Cloud CLI (`gcloud`) with its "
    "cloud-firestore-emulator component and a Java runtime (11 or newer): install the Debian "
    "packages google-cloud-cli and google-cloud-cli-firestore-emulator, or run "
    "`gcloud components install cloud-firestore-emulator`"
)
START_TIMEOUT_S = 60.0  # usually ~2 s; a JVM on a loaded CI machine can take much longer
STOP_GRACE_S = 5.0


@dataclass
class FirestoreEmulator:
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    started_in_s: float = 0.0  # how long the last start() took, for reports

    @property
    def host(self) -> str:
        """HOST:PORT, the value for FIRESTORE_EMULATOR_HOST."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None, "already running"
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            pytest.fail(INSTALL_HINT, pytrace=False)
        began = time.monotonic()
        # Not operator_harness.spawn(): the emulator needs its own process group (see above).
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [gcloud, "emulators", "firestore", "start", f"--host-port={self.host}"],
                # A missing component makes gcloud fail instead of asking to install it.
                env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            wait_for(self._ready, timeout=START_TIMEOUT_S, what=f"the Firestore emulator on {self.host} (log: {self.log_path})")
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - began

    def _ready(self) -> bool:
        try:
            alive(self.proc, self.log_path, "the Firestore emulator")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{INSTALL_HINT}") from exc
        return requests.get(f"http://{self.host}/", timeout=2).text.strip() == "Ok"

    def stop(self) -> None:
        """Stop every process of the emulator (gcloud, its shell wrapper, java); idempotent."""
        if self.proc is None:
            return
        group = self.proc.pid  # a session leader's pid is its process group's id
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            try:
                wait_for(lambda: self._group_gone(group), timeout=STOP_GRACE_S, what="the emulator's processes to exit")
                break
            except AssertionError:
                if sig == signal.SIGKILL:
                    raise
        self.proc = None

    def _group_gone(self, group: int) -> bool:
        assert self.proc is not None
        self.proc.poll()  # reap gcloud itself; its children are reaped by init
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        return False


@contextmanager
def running_emulator(log_path: Path) -> Iterator[FirestoreEmulator]:
    emulator = FirestoreEmulator(log_path)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    """One emulator for a test module (tests keep apart by using their own collections)."""
    with running_emulator(tmp_path_factory.mktemp("firestore") / "emulator.log") as emulator:
        yield emulator


@pytest.fixture
def own_firestore_emulator(tmp_path: Path) -> Iterator[FirestoreEmulator]:
    """An emulator for one test alone, which may stop and start it (on the same port)."""
    with running_emulator(tmp_path / "emulator.log") as emulator:
        yield emulator
