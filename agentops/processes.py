"""Stopping child processes the same way everywhere: SIGTERM, a grace period, SIGKILL."""

from __future__ import annotations

import signal
import subprocess


def terminate(proc: subprocess.Popen[bytes], *, grace_s: float = 15.0) -> int:
    """Ask `proc` to stop, kill it if it has not within `grace_s`; return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return int(proc.returncode)
