"""What the benchmarks share: result rows and their table, percentiles, CPU and memory
readings from /proc, child processes with their logs, and the JSON file.

Kept small and free of any benchmark's logic. A row may carry a target (the issue's
number); the table then shows it and whether the measured value meets it — as
information, never as an assertion: a benchmark reports, it does not fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from operator_harness import free_port as free_port  # noqa: F401  (re-exported for the benchmarks)

from agentops.envtest import ControlPlane  # noqa: E402
from agentops.processes import set_pdeathsig, terminate  # noqa: E402


@dataclass(frozen=True)
class Target:
    """A bound the measured value should stay within: ≤ bound when `at_most`, else ≥ bound."""

    bound: float
    at_most: bool = True

    def met(self, value: Any) -> bool | None:
        """None when there is nothing to judge (a timeout, NaN)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return None
        return value <= self.bound if self.at_most else value >= self.bound

    def shown(self) -> str:
        return f"{'≤' if self.at_most else '≥'} {self.bound:g}"


def verdict(met: bool | None) -> str:
    return {True: "met", False: "missed", None: "n/a"}[met]


class Results:
    """Ordered (key → value, unit, label) rows for the table and the JSON."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[Any, str, str]] = {}
        self.targets: dict[str, Target] = {}

    def add(self, key: str, value: Any, unit: str, label: str, target: Target | None = None) -> None:
        self.rows[key] = (round(value, 4) if isinstance(value, float) else value, unit, label)
        judged = ""
        if target is not None:
            self.targets[key] = target
            judged = f"  (target {target.shown()} {unit}: {verdict(target.met(self.rows[key][0]))})"
        print(f"  {label}: {self.rows[key][0]} {unit}{judged}", flush=True)  # live progress

    def table(self) -> str:
        width = max(len(label) for _, _, label in self.rows.values())
        if not self.targets:
            lines = [f"{'metric':<{width}}  {'value':>12}  unit", "-" * (width + 22)]
        else:
            unit_width = max(len(unit) for _, unit, _ in self.rows.values())
            lines = [f"{'metric':<{width}}  {'value':>12}  {'unit':<{unit_width}}  {'target':>10}  verdict",
                     "-" * (width + unit_width + 37)]
        for key, (value, unit, label) in self.rows.items():
            shown = f"{value:,.3f}" if isinstance(value, float) else (f"{value:,}" if isinstance(value, int) else str(value))
            target = self.targets.get(key)
            if target is None:
                lines.append(f"{label:<{width}}  {shown:>12}  {unit}")
            else:
                lines.append(f"{label:<{width}}  {shown:>12}  {unit:<{unit_width}}  {target.shown():>10}  {verdict(target.met(value))}")
        return "\n".join(lines)

    def metrics(self) -> dict[str, dict[str, Any]]:
        """The rows for the JSON file; rows with a target also carry it and the verdict."""
        out: dict[str, dict[str, Any]] = {}
        for key, (value, unit, label) in self.rows.items():
            out[key] = {"value": value, "unit": unit, "label": label}
            target = self.targets.get(key)
            if target is not None:
                out[key]["target"] = {"bound": target.bound, "atMost": target.at_most}
                out[key]["met"] = target.met(value)
        return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> dict[str, Any]:
    """What a reader needs to judge the numbers: CPUs, load average, Python, platform."""
    return {"cpus": os.cpu_count(), "loadavg": list(os.getloadavg()), "python": platform.python_version(),
            "platform": platform.platform()}


@contextlib.contextmanager
def control_plane_with_crds() -> Iterator[ControlPlane]:
    """A local etcd + kube-apiserver with the project's CRDs applied and Established (stopped on exit)."""
    with ControlPlane() as cp:
        kubectl = [str(cp.kubectl_path), f"--kubeconfig={cp.kubeconfig}"]
        subprocess.run([*kubectl, "apply", "-f", str(REPO / "crds")], check=True, capture_output=True, timeout=60)
        subprocess.run([*kubectl, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"],
                       check=True, capture_output=True, timeout=90)
        yield cp


def write_json(path: Path, params: dict[str, Any], res: Results, **extra: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in params.items()},
        **extra,
        "metrics": res.metrics(),
    }, indent=2))


# ----------------------------------------------------------------- /proc readings


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat, for a utilisation over an interval."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def utilisation(before: tuple[int, int], after: tuple[int, int]) -> float:
    return 100.0 * (after[0] - before[0]) / max(1, after[1] - before[1])


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of `pid`, in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds `pid` has used (fields 14, 15 of /proc/pid/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------- child processes


class Child:
    """One process a benchmark runs: own session, output to a log file, always stopped."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            # Own session: a terminal Ctrl-C reaches only the benchmark, which stops
            # children in order. PDEATHSIG: they die with it even if it is SIGKILLed.
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=set_pdeathsig)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "start() first"
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode} (log {self.log_path}):\n{tail}")
