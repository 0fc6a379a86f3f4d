"""A real Kubernetes control plane (etcd + kube-apiserver) on loopback, for tests and humans.

This is the envtest idea from controller-runtime, in Python: run the genuine API server
binaries instead of a fake, so that admission, RBAC, CRD schema validation and CEL rules
behave exactly as in a cluster.

Trade-offs, chosen on purpose:

* Only etcd and kube-apiserver run. There is no controller-manager, scheduler or kubelet:
  pods are stored but never scheduled, deleted namespaces stay ``Terminating`` forever,
  nothing garbage-collects owner references and no service-account tokens are minted
  (the ServiceAccount admission plugin is disabled so pods can be created without one).
  Tests that need those behaviours belong on a real cluster
  (``AGENTOPS_TEST_EXISTING_CLUSTER=1`` in the test suite).
* Everything is throwaway: etcd runs with ``--unsafe-no-fsync`` and a temporary data
  directory, and the PKI (CA, serving cert, admin client cert, service-account keys) is
  minted fresh on every start. Start-up is a few seconds, paid once per test session.
* Ports are found by binding ``127.0.0.1:0`` and releasing them, so another process could
  in principle grab one in between; on loopback in a test run that is rare enough.
* Binaries come from ``KUBEBUILDER_ASSETS`` (the envtest convention) or are built once by
  ``hack/build-envtest.sh`` into a cache outside the repository.

This module holds the process lifecycle (``ControlPlane``) and the ``agentops controlplane``
command; finding or building the binaries is ``agentops.envtest_binaries``, minting the PKI
and writing the admin kubeconfig is ``agentops.local_pki``.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

from agentops.config import DurationOption
from agentops.envtest_binaries import EnvtestError, find_binaries
from agentops.errors import ConfigError
from agentops.local_pki import write_admin_kubeconfig, write_pki
from agentops.processes import set_pdeathsig

log = logging.getLogger(__name__)

# kube-apiserver is ready in a few seconds here; a cold cache or a loaded CI machine takes longer.
STARTUP_TIMEOUT_S = 60.0


def _free_ports(count: int) -> list[int]:
    # Hold all sockets open until every port is chosen, so the ports are distinct.
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class ControlPlane:
    """etcd + kube-apiserver on 127.0.0.1 with an admin kubeconfig; see the module docstring."""

    def __init__(
        self,
        bin_dir: Path | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_S,
        *,
        bind_address: str = "127.0.0.1",
        advertise_address: str = "127.0.0.1",
        secure_port: int | None = None,
        service_account_admission: bool = False,
    ) -> None:
        """The keyword options serve a control plane inside a network namespace of its own
        (tests/integration/test_kind_path.py): there the API server listens on every
        address of that namespace (``bind_address="0.0.0.0"``), announces the address its
        pods reach it at as the ``kubernetes`` Service's endpoint (``advertise_address``),
        may take a fixed port (``secure_port``, no one else is there), and keeps the
        ServiceAccount admission plugin on (``service_account_admission``) so pods get the
        projected token volume a kubelet fills. The defaults are the loopback-only envtest.
        """
        self._bin_dir = bin_dir
        self.startup_timeout = startup_timeout
        self.bind_address = bind_address
        self.advertise_address = advertise_address
        self.secure_port = secure_port
        self.service_account_admission = service_account_admission
        self.workdir: Path | None = None
        self.kubeconfig = Path()
        self.server = ""
        self.startup_seconds: float | None = None
        self._procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._logs: list[IO[bytes]] = []

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_binaries()
        return self._bin_dir

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        bin_dir = self.bin_dir  # may build; not counted in the start time
        began = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="agentops-envtest-"))
        atexit.register(self.stop)
        try:
            etcd_port, peer_port, free_api_port = _free_ports(3)
            api_port = self.secure_port or free_api_port
            pki = self.workdir / "pki"
            write_pki(pki)
            self._spawn(
                "etcd",
                [
                    str(bin_dir / "etcd"),
                    f"--data-dir={self.workdir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    # The defaults point at localhost:2380, which may be in use by something else.
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                    "--unsafe-no-fsync",
                ],
            )
            # kube-apiserver has no --log-file any more (klog flags were removed); logs go to stderr.
            self._spawn(
                "kube-apiserver",
                [
                    str(bin_dir / "kube-apiserver"),
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    f"--secure-port={api_port}",
                    f"--bind-address={self.bind_address}",
                    f"--advertise-address={self.advertise_address}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--authorization-mode=RBAC",
                    *([] if self.service_account_admission else ["--disable-admission-plugins=ServiceAccount"]),
                    "--allow-privileged=true",
                ],
            )
            self.server = f"https://127.0.0.1:{api_port}"
            self.kubeconfig = self.workdir / "kubeconfig"
            write_admin_kubeconfig(pki, self.server, self.kubeconfig)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        log.info("control plane ready at %s in %.2f s", self.server, self.startup_seconds)

    def stop(self) -> None:
        """Stop the apiserver, then etcd (it must outlive its client), then remove all files."""
        for name, proc, _ in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop on SIGTERM; killing it", name)
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                except ProcessLookupError:
                    proc.wait()
        self._procs.clear()
        for f in self._logs:
            f.close()
        self._logs.clear()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        atexit.unregister(self.stop)

    def _spawn(self, name: str, argv: list[str]) -> None:
        assert self.workdir is not None
        log_path = self.workdir / f"{name}.log"
        log_file = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log_file)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Own session/process group: a terminal's Ctrl-C reaches only us, so we can shut
            # down in order, and killpg() reaches anything the binary might fork.
            start_new_session=True,
            # PDEATHSIG fires when the *thread* that forked exits, so only use it from the main thread.
            preexec_fn=set_pdeathsig if threading.current_thread() is threading.main_thread() else None,
        )
        self._procs.append((name, proc, log_path))

    def _wait_ready(self) -> None:
        assert self.workdir is not None
        pki = self.workdir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            for name, proc, log_path in self._procs:
                if proc.poll() is not None:
                    raise EnvtestError(f"{name} exited with code {proc.returncode} during start-up; "
                                       f"last lines of its log:\n{_tail(log_path)}")
            try:
                with urllib.request.urlopen(f"{self.server}/readyz", context=ctx, timeout=5) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as e:  # 500 while post-start hooks are still running
                last = f"HTTP {e.code}: {e.read().decode(errors='replace')[-2000:]}"
            except (OSError, ssl.SSLError) as e:
                last = str(e)
            time.sleep(0.2)
        raise EnvtestError(f"kube-apiserver not ready after {self.startup_timeout:.0f} s ({last}); "
                           f"last lines of its log:\n{_tail(self._procs[-1][2])}")

    def alive(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for _, p, _ in self._procs)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(log unreadable: {e})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="agentops-envtest",
        description="Run a throwaway etcd + kube-apiserver on loopback until interrupted.",
    )
    parser.add_argument("--print-binaries", action="store_true",
                        help="find or build etcd/kube-apiserver/kubectl, print their directory and exit")
    startup = DurationOption("--startup-timeout", "AGENTOPS_STARTUP_TIMEOUT", STARTUP_TIMEOUT_S, 1.0,
                             "how long to wait for kube-apiserver's /readyz")
    startup.add_to(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        startup_timeout = startup.read(args)
    except ConfigError as exc:
        parser.error(str(exc))
    try:
        if args.print_binaries:
            print(find_binaries())
            return 0
        stop = threading.Event()

        def _on_signal(signum: int, _frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        with ControlPlane(startup_timeout=startup_timeout) as cp:
            print(f"export KUBECONFIG={cp.kubeconfig}")
            print(f"# server: {cp.server}")
            print(f"# kubectl: {cp.kubectl_path}")
            print("# Ctrl-C to stop (the kubeconfig is deleted with the control plane)", flush=True)
            # A short wait in a loop keeps signal handling prompt and notices a crashed child.
            while not stop.wait(1.0):
                if not cp.alive():
                    log.error("a control-plane process exited unexpectedly; stopping")
                    return 1
        return 0
    except EnvtestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
