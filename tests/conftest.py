"""Shared fixtures: a real control plane (or an opted-in existing cluster) driven by real kubectl.

By default the session starts its own etcd + kube-apiserver (agentops.envtest). With
AGENTOPS_TEST_EXISTING_CLUSTER=1 the tests run against the cluster in KUBECONFIG instead,
which is how to exercise what the bare control plane lacks (scheduling, controllers).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentops.envtest import ControlPlane
from agentops.envtest_binaries import find_binaries

REPO_ROOT = Path(__file__).resolve().parents[1]
CRDS_DIR = REPO_ROOT / "crds"


@dataclass
class Cluster:
    kubeconfig: Path
    server: str
    kubectl_path: Path
    pki: Path | None = None  # the local control plane's keys (sa.key signs its ServiceAccount tokens); None: an existing cluster

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (operators, CLIs) that should talk to this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=self.env())
        if check and proc.returncode != 0:
            # An AssertionError (not CalledProcessError) so pytest shows it as a test failure
            # with everything needed to understand it.
            raise AssertionError(
                f"kubectl failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc

    def apply_crds(self, directory: Path) -> list[str]:
        """Apply every manifest in `directory`, wait until all CRDs are Established, return `-o name`s."""
        out = self.kubectl("apply", "-f", str(directory), "-o", "name").stdout.split()
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s", timeout=90)
        return out


def _existing_cluster(tmp: Path) -> Cluster:
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        pytest.fail("AGENTOPS_TEST_EXISTING_CLUSTER=1 needs KUBECONFIG to point at the cluster to use", pytrace=False)
    found = shutil.which("kubectl")
    kubectl = Path(found) if found else find_binaries() / "kubectl"
    # Flatten the current context into one file: KUBECONFIG may be a list, --kubeconfig may not.
    flat = subprocess.run(
        [str(kubectl), "config", "view", "--raw", "--flatten", "--minify"],
        capture_output=True, text=True, check=False,
    )
    if flat.returncode != 0:
        pytest.fail(f"cannot read KUBECONFIG={kubeconfig}: {flat.stderr}", pytrace=False)
    path = tmp / "kubeconfig"
    path.write_text(flat.stdout)
    path.chmod(0o600)
    server = subprocess.run(
        [str(kubectl), f"--kubeconfig={path}", "config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    return Cluster(kubeconfig=path, server=server, kubectl_path=kubectl)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.environ.get("AGENTOPS_TEST_EXISTING_CLUSTER") == "1":
        yield _existing_cluster(tmp_path_factory.mktemp("existing-cluster"))
        return
    cp = ControlPlane()
    cp.start()
    try:
        yield Cluster(kubeconfig=cp.kubeconfig, server=cp.server, kubectl_path=cp.kubectl_path,
                      pki=cp.workdir / "pki" if cp.workdir else None)
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> list[str]:
    """The project's CRDs, applied and Established (names as `kubectl -o name` prints them)."""
    return cluster.apply_crds(CRDS_DIR)


@pytest.fixture
def make_namespace(cluster: Cluster) -> Iterator[Callable[[], str]]:
    """Make fresh namespaces for this test; each is deleted after it."""
    made: list[str] = []

    def make() -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        cluster.kubectl("create", "namespace", name)
        made.append(name)
        return name

    yield make
    for name in made:
        # No namespace controller runs on the bare control plane, so waiting would never end.
        cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def namespace(make_namespace: Callable[[], str]) -> str:
    return make_namespace()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.controlplane)
