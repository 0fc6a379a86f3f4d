"""Fixtures for the integration tests: the operator process and kubectl for one namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import Kube, OperatorProcess


@pytest.fixture
def operator(cluster: Any, crds: Any, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(
        env=cluster.env(),
        namespace=namespace,
        log_path=tmp_path / "operator.log",
        # Fast heartbeats so that metric-only updates are visible within a test.
        extra_args=["--status-heartbeat-seconds", "2", "--lease-seconds", "10"],
    )
    op.start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture
def kube(cluster: Any, namespace: str) -> Kube:
    return Kube(cluster, namespace)


