"""Where the local control plane's binaries (etcd, kube-apiserver, kubectl) come from.

Two sources, in this order:

* ``KUBEBUILDER_ASSETS``, the envtest convention (``setup-envtest`` prints such a
  directory). It is trusted as given: a wrong path fails loudly and is never "repaired"
  by building, which would turn a typo into a silent several-minute wait.
* ``hack/build-envtest.sh``, which finds or builds the binaries once from Go modules into
  a cache outside the repository and prints that directory as its last stdout line.

``EnvtestError`` lives here, as the first place that raises it; ``agentops.envtest``
raises the same error when the control plane does not start.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BINARIES = ("etcd", "kube-apiserver", "kubectl")


class EnvtestError(RuntimeError):
    """The control plane could not be found, built or started."""


def find_binaries() -> Path:
    """Return a directory holding etcd, kube-apiserver and kubectl.

    ``KUBEBUILDER_ASSETS`` wins if set (and is never "repaired" by building: a wrong path
    should fail loudly, not silently trigger a long build). Otherwise the build script
    finds or builds them and prints the directory as its last stdout line.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        directory = Path(assets)
        source = f"KUBEBUILDER_ASSETS={assets}"
    else:
        script = REPO_ROOT / "hack" / "build-envtest.sh"
        # stderr is inherited so a cold build's progress shows up live.
        proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, stderr=None, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode != 0 or not lines:
            raise EnvtestError(f"{script} failed (exit {proc.returncode}); see its output above")
        directory = Path(lines[-1].strip())
        source = str(script)
    missing = [b for b in BINARIES if not (directory / b).is_file() or not os.access(directory / b, os.X_OK)]
    if missing:
        raise EnvtestError(f"{source}: missing or not executable in {directory}: {', '.join(missing)}")
    return directory
