"""Fixtures for the integration tests: the operator process and kubectl for one namespace."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import Kube, OperatorProcess
from ui_harness import UIProcess, readonly_kubeconfig

# Fast heartbeats so that metric-only updates are visible within a test.
DEFAULT_OPERATOR_ARGS = ("--status-heartbeat", "2s", "--lease", "10s")


@pytest.fixture
def start_operator(cluster: Any, crds: Any, namespace: str, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """Start the real operator on this test's namespace, with other flags if needed; stopped after the test."""
    started: list[OperatorProcess] = []

    def start(*extra_args: str) -> OperatorProcess:
        op = OperatorProcess(env=cluster.env(), namespace=namespace, log_path=tmp_path / f"operator-{len(started)}.log", cluster=cluster,
                             extra_args=list(extra_args or DEFAULT_OPERATOR_ARGS))
        started.append(op)
        op.start()
        return op

    try:
        yield start
    finally:
        for op in started:
            op.stop()


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator()


@pytest.fixture
def kube(cluster: Any, namespace: str) -> Kube:
    return Kube(cluster, namespace)


@pytest.fixture
def ui(cluster: Any, crds: Any, namespace: str, tmp_path: Path) -> Iterator[UIProcess]:
    """The read-only UI on this test's namespace, with its own ServiceAccount token."""
    proc = UIProcess(readonly_kubeconfig(cluster, tmp_path / "ui.kubeconfig"), namespace, tmp_path / "ui.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
