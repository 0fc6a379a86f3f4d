"""Child processes, handled the same way everywhere: they die with their parent, and are
stopped with SIGTERM, a grace period, then SIGKILL."""

from __future__ import annotations

import ctypes
import signal
import subprocess

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def set_pdeathsig() -> None:
    """preexec_fn for long-lived children (servers, nodes, containers, agents): die with their parent.

    Linux: the kernel kills the child if we die without running any cleanup (SIGKILL,
    OOM), so no orphaned etcd, apiserver or agent survives a hard-killed parent. The
    signal fires when the *thread* that forked exits, so start such children from the
    main thread (or from a thread that lives as long as they should).
    """
    # Runs in the child between fork and exec, hence ctypes imported up front, not here.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:  # noqa: BLE001 - best effort (no prctl outside Linux); callers still stop children
        pass


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
