"""Network namespaces for the node and its pods, and nothing on the host's network.

The layout (all of it inside namespaces this test creates; the machine's own network
namespace gets no address, route or link):

* the node namespace ``agentops-node-<pid>``: the bridge ``cbr0`` with the node's
  address (10.244.0.1/24, the pods' gateway), and its loopback holding each Service's
  ClusterIP as a /32 (as kube-proxy's IPVS mode holds them on a dummy link, which this
  kernel may not have: an address on lo is local just the same). etcd, kube-apiserver, kube-controller-manager, the node agent and its
  Service proxy run here; the API server listens on every address of this namespace.
* one namespace per pod, ``agentops-p<pid>-<n>``: loopback and ``eth0`` (a veth whose
  other end is on the bridge) with the pod's address, default route via the node.

Names carry the pid of the test process that made them, so a later run can delete what a
killed run left behind without touching a run that is still alive.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NETNS_DIR = Path("/run/netns")
BRIDGE, SERVICES_LINK = "cbr0", "lo"
POD_CIDR = ipaddress.ip_network("10.244.0.0/24")
NODE_IP = str(next(POD_CIDR.hosts()))  # 10.244.0.1
CLONE_NEWNET = 0x40000000


class NetworkError(RuntimeError):
    """A namespace, link or address could not be set up."""


def ip(*args: str, netns: str | None = None, batch: list[str] | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), *(["-batch", "-"] if batch is not None else args)]
    proc = subprocess.run(argv, input="\n".join(batch) + "\n" if batch is not None else None,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        what = "; ".join(batch) if batch is not None else " ".join(args)
        raise NetworkError(f"ip {what} (in {netns or 'the current namespace'}): {proc.stderr.strip()}")


def node_netns_name(pid: int) -> str:
    return f"agentops-node-{pid}"


def pod_netns_name(pid: int, n: int) -> str:
    return f"agentops-p{pid}-{n}"


def create_node_netns(name: str) -> None:
    ip("netns", "add", name)
    ip(netns=name, batch=[
        "link set lo up",
        f"link add {BRIDGE} type bridge",
        f"addr add {NODE_IP}/{POD_CIDR.prefixlen} dev {BRIDGE}",
        f"link set {BRIDGE} up",
    ])


def create_pod_netns(name: str, veth: str, address: str) -> None:
    """The pod's namespace, wired to the bridge; run from inside the node namespace."""
    ip("netns", "add", name)
    try:
        ip(batch=[
            f"link add {veth} type veth peer name eth0 netns {name}",
            f"link set {veth} master {BRIDGE} up",
        ])
        ip(netns=name, batch=[
            "link set lo up",
            f"addr add {address}/{POD_CIDR.prefixlen} dev eth0",
            "link set eth0 up",
            f"route add default via {NODE_IP}",
        ])
    except NetworkError:
        delete_netns(name)
        raise


def netns_pids(name: str) -> list[int]:
    proc = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
    return [int(p) for p in proc.stdout.split()]


def delete_netns(name: str) -> None:
    """Kill whatever still runs in it, then delete it (its veth goes with it)."""
    for pid in netns_pids(name):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def ours(pid: int) -> list[str]:
    """The namespaces made by the test process `pid`: its node and its pods."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(n.name for n in NETNS_DIR.iterdir()
                  if n.name == node_netns_name(pid) or n.name.startswith(f"agentops-p{pid}-"))


def delete_leftovers() -> list[str]:
    """Delete namespaces left by test processes that no longer exist."""
    deleted = []
    if NETNS_DIR.is_dir():
        for entry in NETNS_DIR.iterdir():
            m = re.fullmatch(r"agentops-(?:node-|p)(\d+)(?:-\d+)?", entry.name)
            if m and not Path(f"/proc/{m.group(1)}").exists():
                delete_netns(entry.name)
                deleted.append(entry.name)
    return deleted


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetworkError(f"setns: {os.strerror(err)}")


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the calling thread (and every process it starts) in the namespace `name`.

    setns changes only the calling thread; sockets keep the namespace they were made in,
    so connections opened before stay where they were.
    """
    original = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(original)
    finally:
        os.close(original)
