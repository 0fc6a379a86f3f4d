"""The README's path from `kind create cluster` to a healed agent, for real, without kind.

This machine has no Docker engine, no kind and no registry, so what kind would start is
put together from real parts and one stand-in:

* real etcd, kube-apiserver (with ServiceAccount admission) and kube-controller-manager
  (deployments, replicasets, endpointslices, garbage collector, service accounts, root CA
  publisher, ...), built from k8s.io/kubernetes v1.34.4 (hack/build-envtest.sh,
  hack/build-kube-controller-manager.sh);
* real kubectl running the README's own commands and the e2e workflow's own steps, read
  out of README.md and .github/workflows/e2e-kind.yaml, on the manifests as they are;
* the node: kind_node/, a node agent in place of kubelet + scheduler + kube-proxy + DNS.
  The image `agentops:dev` is the Dockerfile's ENTRYPOINT/CMD/ENV/USER over this
  checkout's virtualenv; containers are processes in a network namespace per pod and a
  mount namespace per container (kind_node/ docstrings say exactly what is emulated).

Networking stays inside namespaces this test makes: the control plane, the node agent,
its bridge and Service proxy live in the node's network namespace (this module's
thread joins it, so kubectl and urllib here talk to 127.0.0.1 there), each pod in its
own. The API server calls the operator's sidecar-injection webhook as it does on kind:
its default service resolver turns the Service into https://<ClusterIP>:<port> (no DNS
involved; the TLS name is <service>.<namespace>.svc), and the node agent's Service proxy
listens on that ClusterIP in the very namespace the API server runs in. Everything is removed on the way out, also when a test fails or times out (the
timeout interrupts the test in the main thread so the fixture's cleanup runs).

Without root, `ip netns` or Go (to build kube-controller-manager) the module fails with
the reason; with AGENTOPS_TEST_EXISTING_CLUSTER=1 it is skipped: the e2e workflow then
runs the same path on kind itself.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kind_node import network

from agentops.envtest import ControlPlane
from agentops.envtest_binaries import find_binaries
from agentops.processes import set_pdeathsig

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NS = "agents-demo"
API_PORT = 6443  # alone in the node namespace: the port kind's API server uses
SIDECAR = "agentops-sidecar"  # the injected native sidecar's name (operator/injection.py)

# A controller-manager for what these manifests need; the rest stays off to spare CPU.
CONTROLLERS = ("deployment-controller", "replicaset-controller", "endpointslice-controller",
               "endpointslice-mirroring-controller", "garbage-collector-controller", "serviceaccount-controller",
               "namespace-controller", "root-ca-certificate-publisher-controller", "pod-garbage-collector-controller",
               "service-cidr-controller")

pytestmark = [pytest.mark.controlplane, pytest.mark.timeout(200, method="signal")]


@dataclass
class NodeCluster:
    kubeconfig: Path
    kubectl_path: Path
    logdir: Path
    node_log: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "PATH": f"{self.kubectl_path.parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def sh(self, script: str, *, extra_env: dict[str, str] | None = None, timeout: float = 180) -> str:
        """Run shell lines as a user would (bash -euo pipefail, kubectl on PATH, from the repository)."""
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=timeout, env={**self.env(), **(extra_env or {})})
        if proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode} from:\n{script}\n--- stdout ---\n{proc.stdout}\n"
                                 f"--- stderr ---\n{proc.stderr}\n{self.diagnostics()}")
        return proc.stdout

    def kubectl(self, *args: str) -> str:
        proc = subprocess.run([str(self.kubectl_path), *args], capture_output=True, text=True, timeout=60, env=self.env())
        if proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def container_log(self, namespace: str, pod_prefix: str, container: str) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logdir.glob(f"{namespace}_{pod_prefix}*/{container}.log")))

    def diagnostics(self) -> str:
        """What the workflow's Diagnostics step shows, from here."""
        proc = subprocess.run([str(self.kubectl_path), "get", "nodes,pods,deployments,agents,faults", "-A", "-o", "wide"],
                              capture_output=True, text=True, timeout=30, env=self.env())
        parts = [f"--- cluster ---\n{proc.stdout}{proc.stderr}"]
        for path in [self.node_log, *sorted(self.logdir.glob("*/*.log"))]:
            tail = "\n".join(path.read_text(errors="replace").splitlines()[-15:])
            parts.append(f"--- {path.parent.name}/{path.name} (last lines) ---\n{tail}")
        return "\n".join(parts)


def _require(ok: bool, message: str) -> None:
    if not ok:
        pytest.fail(message, pytrace=False)


def _build_controller_manager() -> Path:
    script = REPO_ROOT / "hack" / "build-kube-controller-manager.sh"
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, stderr=None, text=True, check=False)
    lines = proc.stdout.split()
    _require(proc.returncode == 0 and bool(lines), f"{script} failed (exit {proc.returncode}); see its output above")
    return Path(lines[-1])


def _spawn(argv: list[str], log_path: Path, stack: ExitStack, *, cwd: Path | None = None,
           env: dict[str, str] | None = None, grace: float = 15) -> subprocess.Popen[bytes]:
    log_file = stack.enter_context(open(log_path, "wb"))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, cwd=cwd,
                            env=env, start_new_session=True, preexec_fn=set_pdeathsig)

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    stack.callback(stop)
    return proc


def _wait(what: str, check: Any, timeout: float, *procs: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc, log_path in procs:
            if proc.poll() is not None:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
                pytest.fail(f"{name} exited with {proc.returncode} while waiting for {what}:\n{tail}", pytrace=False)
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout:.0f} s", pytrace=False)


def _delete_our_namespaces() -> None:
    for name in network.ours(os.getpid()):
        network.delete_netns(name)


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    if os.environ.get("AGENTOPS_TEST_EXISTING_CLUSTER") == "1":
        pytest.skip("AGENTOPS_TEST_EXISTING_CLUSTER=1: the e2e workflow runs this path on kind itself")
    _require(sys.platform == "linux" and os.geteuid() == 0,
             "the kind-path test needs root on Linux: it makes network and mount namespaces (CI runs `make test` as root)")
    for tool in ("ip", "setpriv", "bash"):
        _require(shutil.which(tool) is not None, f"the kind-path test needs `{tool}` (iproute2, util-linux)")
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    _require(probe.returncode == 0, f"`ip netns` does not work here: {probe.stderr.strip()}")
    kcm = _build_controller_manager()
    bin_dir = find_binaries()
    network.delete_leftovers()
    tmp = tmp_path_factory.mktemp("kind-path")
    logdir = tmp / "logs"
    logdir.mkdir()
    node_ns = network.node_netns_name(os.getpid())
    with ExitStack() as stack:
        stack.callback(_delete_our_namespaces)
        network.create_node_netns(node_ns)
        stack.enter_context(network.entered(node_ns))
        cp = ControlPlane(bin_dir, bind_address="0.0.0.0", advertise_address=network.NODE_IP, secure_port=API_PORT,
                          service_account_admission=True)
        cp.start()
        stack.callback(cp.stop)
        assert cp.workdir is not None
        pki = cp.workdir / "pki"
        kcm_log = tmp / "kube-controller-manager.log"
        kcm_proc = _spawn([str(kcm), f"--kubeconfig={cp.kubeconfig}", "--leader-elect=false", "--secure-port=0",
                           f"--controllers={','.join(CONTROLLERS)}", f"--root-ca-file={pki / 'ca.crt'}",
                           f"--service-account-private-key-file={pki / 'sa.key'}",
                           "--use-service-account-credentials=false"], kcm_log, stack)
        node_log = tmp / "node-agent.log"
        node_proc = _spawn([sys.executable, "-m", "kind_node", f"--server={cp.server}", f"--pki={pki}",
                            f"--workdir={tmp / 'node'}", f"--logdir={logdir}", f"--test-pid={os.getpid()}"],
                           node_log, stack, cwd=HERE, grace=30)
        cluster = NodeCluster(kubeconfig=cp.kubeconfig, kubectl_path=cp.kubectl_path, logdir=logdir, node_log=node_log)
        procs = (("kube-controller-manager", kcm_proc, kcm_log), ("node agent", node_proc, node_log))

        def node_ready() -> bool:
            proc = subprocess.run([str(cp.kubectl_path), "get", "node", "-o",
                                   "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}"],
                                  capture_output=True, text=True, env=cluster.env(), check=False)
            return proc.stdout.strip() == "True"

        def default_account() -> bool:  # the serviceaccount controller is at work
            return subprocess.run([str(cp.kubectl_path), "get", "serviceaccount", "default", "-n", "default"],
                                  capture_output=True, env=cluster.env(), check=False).returncode == 0

        _wait("the node to be Ready", node_ready, 30, *procs)
        _wait("the controllers to start", default_account, 60, *procs)
        yield cluster


def readme_block() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## On a cluster: from `kind create cluster` to a healed agent", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README: no sh block in the kind section"
    return block.group(1).splitlines()


def workflow_step(name: str) -> str:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "e2e-kind.yaml").read_text())
    (step,) = [s for s in workflow["jobs"]["e2e"]["steps"] if s.get("name") == name]
    run: str = step["run"]
    return run


def workflow_env() -> dict[str, str]:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "e2e-kind.yaml").read_text())
    return {k: str(v) for k, v in workflow["env"].items()}


def test_readme_path_installs_agentops_and_both_agents_become_ready(node_cluster: NodeCluster) -> None:
    lines = readme_block()
    # What the node agent stands in for; everything else runs as written.
    replaced = [line for line in lines if line.startswith(("kind ", "docker "))]
    assert [line.split()[:2] for line in replaced] == [["kind", "create"], ["docker", "build"]], replaced
    last = next(i for i, line in enumerate(lines) if "--for=condition=Ready agent/chat agent/summary" in line)
    install = [line for line in lines[: last + 1] if line not in replaced]
    for expected in ("kubectl apply -k manifests/overlays/kind", "kubectl apply -k manifests/samples/cluster",
                     "deployment/agentops-operator", f"kubectl label namespace {NS} agentops.dev/inject=enabled"):
        assert any(expected in line for line in install), f"README no longer says {expected!r}"
    assert not [line for line in install if "secret" in line], "no shared secret is created any more"
    node_cluster.sh("\n".join(install), timeout=190)

    pods = node_cluster.get("pods", "-A")["items"]
    running = {p["metadata"]["name"].rsplit("-", 2)[0]: p for p in pods if p["status"].get("phase") == "Running"}
    assert {"agentops-operator", "agentops-ui", "chat", "summary", "traffic"} <= set(running), sorted(running)
    assert all(p["spec"]["nodeName"] == "agentops-control-plane" for p in pods)
    # The operator pod got the projected ServiceAccount token the admission plugin adds.
    operator_volumes = running["agentops-operator"]["spec"]["volumes"]
    assert any(v["name"].startswith("kube-api-access-") for v in operator_volumes), operator_volumes


def _life(cluster: NodeCluster, namespace: str, pod: str) -> list[tuple[str, str]]:
    """(container, step) in the order the node agent recorded them (kind_node/pods.py: running, started,
    stopping, stopped)."""
    pattern = re.compile(rf"container {re.escape(namespace)}/{re.escape(pod)}/(\S+) (running|started|stopping|stopped)\b")
    return [(m.group(1), m.group(2)) for m in map(pattern.search, cluster.node_log.read_text().splitlines()) if m]


def _before(life: list[tuple[str, str]], first: tuple[str, str], then: tuple[str, str]) -> bool:
    return first in life and then in life and life.index(first) < life.index(then)


def test_the_webhook_injected_a_native_sidecar_that_started_first(node_cluster: NodeCluster) -> None:
    """The operator's webhook, called by the real API server, put the sidecar in as a native sidecar;
    the node started it (its startup probe passed, if it has one) before the agent."""
    # The pod is Ready only once the sidecar's readiness probe (its probe of the agent) passed.
    node_cluster.kubectl("wait", "-n", NS, "pod", "-l", "agentops.dev/agent=chat", "--for=condition=Ready",
                         "--timeout=60s")
    (chat,) = node_cluster.get("pods", "-n", NS, "-l", "agentops.dev/agent=chat")["items"]
    spec, status = chat["spec"], chat["status"]
    first = (spec.get("initContainers") or [{}])[0]
    assert first.get("name") == SIDECAR and first.get("restartPolicy") == "Always", spec.get("initContainers")
    assert [c["name"] for c in spec["containers"]] == ["agent"], "no sidecar among the regular containers"
    (sidecar,) = status["initContainerStatuses"]
    assert sidecar["started"] and sidecar["ready"] and "running" in sidecar["state"], sidecar
    life = _life(node_cluster, NS, chat["metadata"]["name"])
    assert _before(life, (SIDECAR, "started"), ("agent", "running")), life


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _mounts(pid: int) -> dict[str, set[str]]:
    """Mount point -> its per-mount options, as the process sees them (the last mount wins)."""
    found: dict[str, set[str]] = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        found[fields[4]] = set(fields[5].split(","))
    return found


def test_containers_run_as_the_pod_asks(node_cluster: NodeCluster) -> None:
    """The security context and the pod's namespaces, read from the processes themselves."""
    (chat,) = node_cluster.get("pods", "-n", NS, "-l", "agentops.dev/agent=chat")["items"]
    statuses = [*chat["status"].get("initContainerStatuses", []), *chat["status"]["containerStatuses"]]
    pids = {s["name"]: int(s["containerID"].removeprefix("process://")) for s in statuses}
    assert set(pids) == {"agent", SIDECAR}, pids
    netns = {os.stat(f"/proc/{pid}/ns/net").st_ino for pid in pids.values()}
    assert len(netns) == 1, "the containers of one pod share its network namespace"
    assert netns != {os.stat("/proc/thread-self/ns/net").st_ino}, "the pod has a network namespace of its own"
    for name, pid in pids.items():
        status = _proc_status(pid)
        assert status["Uid"].split() == ["10001"] * 4 and status["Gid"].split() == ["10001"] * 4, (name, status)
        assert status["Groups"].split() == ["10001"], (name, status["Groups"])  # runAsGroup and fsGroup
        assert status["NoNewPrivs"] == "1" and int(status["CapBnd"], 16) == 0 and int(status["CapEff"], 16) == 0
        mounts = _mounts(pid)
        assert "ro" in mounts["/"], "readOnlyRootFilesystem: / is read-only for the container"
        assert "rw" in mounts["/tmp"], "the emptyDir on /tmp is writable"
        assert "ro" in mounts["/run/secrets/agentops.dev/identity" if name == SIDECAR else "/etc/resolv.conf"]
    # The sidecar's identity: a projected token for the operator's audience only, readable by the pod's group.
    sidecar_token = Path(f"/proc/{pids[SIDECAR]}/root/run/secrets/agentops.dev/identity/token")
    assert sidecar_token.stat().st_gid == 10001 and sidecar_token.stat().st_mode & 0o002 == 0
    claims = json.loads(base64.urlsafe_b64decode(sidecar_token.read_text().split(".")[1] + "=="))
    assert claims["aud"] == ["agentops"] and claims["sub"] == f"system:serviceaccount:{NS}:agentops-sidecar", claims
    ca = Path(f"/proc/{pids[SIDECAR]}/root/run/secrets/agentops.dev/ca/ca.crt")
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_a_latency_fault_makes_chat_degraded(node_cluster: NodeCluster) -> None:
    step = workflow_step("A latency fault makes chat Degraded")
    assert "manifests/samples/cluster/faults/latency.yaml" in step
    node_cluster.sh(step, extra_env=workflow_env())


def test_a_crash_fault_is_healed_by_a_restart(node_cluster: NodeCluster) -> None:
    assert "kubectl apply -f manifests/samples/cluster/faults/crash.yaml" in readme_block()
    before = {p["metadata"]["name"] for p in node_cluster.get("pods", "-n", NS, "-l", "agentops.dev/agent=chat")["items"]}
    node_cluster.sh(workflow_step("A crash fault is healed by a restart"), extra_env=workflow_env(), timeout=190)

    chat = node_cluster.get("agent", "chat", "-n", NS)
    assert chat["status"]["restartCount"] == 1, chat["status"]
    incident = chat["status"]["incidents"][-1]
    assert incident["state"] == "Healed", incident
    # The real controllers rolled a new pod, the node agent ran it, the old one is gone.
    after = node_cluster.get("pods", "-n", NS, "-l", "agentops.dev/agent=chat")["items"]
    assert [p["metadata"]["name"] for p in after if p["metadata"]["name"] in before] == []
    assert all(p["status"]["phase"] == "Running" for p in after), [p["status"] for p in after]
    template = node_cluster.get("deployment", "chat", "-n", NS)["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in template, template
    # The old pod stopped as the kubelet stops a pod with a native sidecar: the agent first,
    # its sidecar only after the agent had exited.
    for old in before:
        life = _life(node_cluster, NS, old)
        assert _before(life, ("agent", "stopped"), (SIDECAR, "stopping")), life


def test_the_ui_serves_its_overview_through_its_service(node_cluster: NodeCluster) -> None:
    node_cluster.kubectl("wait", "-n", "agentops-system", "--for=condition=Available", "deployment/agentops-ui",
                         "--timeout=60s")
    service = node_cluster.get("service", "agentops-ui", "-n", "agentops-system")
    (port,) = service["spec"]["ports"]
    urls = [f"http://{service['spec']['clusterIP']}:{port['port']}/",
            f"http://{network.NODE_IP}:{port['nodePort']}/"]  # the NodePort kind-config.yaml maps to the host
    for url in urls:
        with urllib.request.urlopen(url, timeout=10) as resp:
            page = resp.read().decode()
        assert resp.status == 200 and "chat" in page and "summary" in page, (url, page[:500])


def test_the_operator_was_never_refused(node_cluster: NodeCluster) -> None:
    log = node_cluster.container_log("agentops-system", "agentops-operator", "operator")
    assert log.strip(), "no operator log"
    refused = [line for line in log.splitlines() if re.search(r"\b403\b|[Ff]orbidden", line)]
    assert refused == [], "\n".join(refused[:20])


def test_a_container_that_exits_is_restarted(node_cluster: NodeCluster) -> None:
    """restartPolicy Always, as the node agent keeps it: RESTARTS 1 and the last state recorded."""
    (traffic,) = node_cluster.get("pods", "-n", NS, "-l", "app.kubernetes.io/name=traffic")["items"]
    (container,) = traffic["status"]["containerStatuses"]
    os.kill(int(container["containerID"].removeprefix("process://")), signal.SIGKILL)
    name = traffic["metadata"]["name"]
    node_cluster.kubectl("wait", "-n", NS, f"pod/{name}", "--timeout=60s",
                         "--for=jsonpath={.status.containerStatuses[0].restartCount}=1")
    node_cluster.kubectl("wait", "-n", NS, f"pod/{name}", "--for=condition=Ready", "--timeout=60s")
    (after,) = node_cluster.get("pod", name, "-n", NS)["status"]["containerStatuses"]
    assert after["lastState"]["terminated"]["exitCode"] == 137, after


# A container that sleeps until stopped (the image's interpreter; SIGTERM ends it at once).
SLEEP = ["python", "-c", "import time; time.sleep(86400)"]


def _listen_after(port: int, delay: float) -> list[str]:
    """A container that starts listening on `port` after `delay` seconds, then sleeps until stopped."""
    return ["python", "-c", f"import socket, time; time.sleep({delay}); s = socket.create_server(('', {port})); "
                            "time.sleep(86400)"]


def test_native_sidecars_start_in_order_restart_and_stop_last(node_cluster: NodeCluster) -> None:
    """The node agent on its own, with a hand-written pod: two native sidecars and one container."""
    ns, name = "native-sidecars", "ordered"
    node_cluster.kubectl("create", "namespace", ns)
    _wait("the namespace's default ServiceAccount",
          lambda: subprocess.run([str(node_cluster.kubectl_path), "get", "serviceaccount", "default", "-n", ns],
                                 capture_output=True, env=node_cluster.env(), check=False).returncode == 0, 30)
    tcp = {"periodSeconds": 1, "failureThreshold": 60}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": {
        "automountServiceAccountToken": False, "terminationGracePeriodSeconds": 10,
        "initContainers": [
            # Started only once it listens: the next containers wait for its startup probe.
            {"name": "first", "image": "agentops:dev", "restartPolicy": "Always", "command": _listen_after(9001, 2),
             "startupProbe": {"tcpSocket": {"port": 9001}, **tcp}},
            # Started once running; never ready, which keeps the whole pod unready.
            {"name": "second", "image": "agentops:dev", "restartPolicy": "Always", "command": SLEEP,
             "readinessProbe": {"tcpSocket": {"port": 9002}, **tcp}},
        ],
        "containers": [{"name": "main", "image": "agentops:dev", "command": SLEEP}]}}
    subprocess.run([str(node_cluster.kubectl_path), "apply", "-f", "-"], input=json.dumps(pod), text=True,
                   check=True, capture_output=True, env=node_cluster.env())
    node_cluster.kubectl("wait", "-n", ns, f"pod/{name}", "--timeout=60s",
                         "--for=jsonpath={.status.containerStatuses[0].ready}=true")

    status = node_cluster.get("pod", name, "-n", ns)["status"]
    assert [s["name"] for s in status["initContainerStatuses"]] == ["first", "second"], status
    assert [s["name"] for s in status["containerStatuses"]] == ["main"], status
    assert all(s["started"] and "running" in s["state"] for s in status["initContainerStatuses"]), status
    assert [s["ready"] for s in status["initContainerStatuses"]] == [True, False], status
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert status["phase"] == "Running" and conditions["Initialized"] == "True", status
    assert conditions["ContainersReady"] == conditions["Ready"] == "False", "an unready sidecar keeps the pod unready"
    life = _life(node_cluster, ns, name)
    assert _before(life, ("first", "started"), ("second", "running")), life
    assert _before(life, ("second", "started"), ("main", "running")), life

    # A sidecar that exits is restarted (after the kubelet's first back-off); the container stays.
    os.kill(int(status["initContainerStatuses"][0]["containerID"].removeprefix("process://")), signal.SIGKILL)
    node_cluster.kubectl("wait", "-n", ns, f"pod/{name}", "--timeout=60s",
                         "--for=jsonpath={.status.initContainerStatuses[0].restartCount}=1")
    node_cluster.kubectl("wait", "-n", ns, f"pod/{name}", "--timeout=60s",
                         "--for=jsonpath={.status.initContainerStatuses[0].started}=true")
    after = node_cluster.get("pod", name, "-n", ns)["status"]
    assert after["containerStatuses"][0]["restartCount"] == 0, after
    assert after["initContainerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137, after

    # Deletion: the container first, then the sidecars in reverse order, each after the one before exited.
    node_cluster.kubectl("delete", "pod", name, "-n", ns, "--wait=true", "--timeout=60s")
    life = _life(node_cluster, ns, name)
    assert _before(life, ("main", "stopped"), ("second", "stopping")), life
    assert _before(life, ("second", "stopped"), ("first", "stopping")), life
    node_cluster.kubectl("delete", "namespace", ns, "--wait=false")
