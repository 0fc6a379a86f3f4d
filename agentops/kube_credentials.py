"""Kubernetes credentials for the operator and the UI: one loader, no shared temp files.

pykube turns a kubeconfig's inline `certificate-authority-data`, `client-certificate-data`
and `client-key-data` into files named `<tmp>/pykube-ng.<md5>.crt`: shared by every
process on the machine, written with the default umask (a client key readable by all)
and written once per process, so when anything removes one, every later request of that
client fails until a restart. Here inline data goes to a directory of this process's
own (0700, files 0600) and is written again whenever it has gone missing. kopf gets the
bytes themselves (kopf.ConnectionInfo's *_data fields) and no file at all.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import kopf
import pykube
from pykube.config import BytesOrFile

# (section in the kubeconfig, its entry key in the section's body, the pykube field)
_INLINE = (("clusters", "cluster", "certificate-authority"),
           ("users", "user", "client-certificate"),
           ("users", "user", "client-key"))

_private_dir: Path | None = None
# Clients are shared by worker threads: one checks and writes a file while the others wait.
_lock = threading.Lock()


def _directory() -> Path:
    """This process's directory for credential files, made again if it was removed."""
    global _private_dir
    if _private_dir is None or not _private_dir.is_dir():
        _private_dir = Path(tempfile.mkdtemp(prefix="agentops-kube-"))  # mode 0700
        atexit.register(shutil.rmtree, _private_dir, ignore_errors=True)
    return _private_dir


class PrivateFile(BytesOrFile):  # type: ignore[misc]  # pykube has no type hints
    """Inline kubeconfig data served as a private file that re-appears when deleted."""

    def __init__(self, data: str, name: str) -> None:
        super().__init__(data=data)
        self._name = name
        self._file: Path | None = None

    def filename(self) -> str:
        with _lock:
            if self._file is None or not self._file.is_file():
                path = _directory() / self._name
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(self.bytes())
                self._file = path
            return str(self._file)


def load(kubeconfig: str | None = None) -> pykube.KubeConfig:
    """The in-cluster ServiceAccount, else `kubeconfig`, else KUBECONFIG / ~/.kube/config."""
    config = pykube.KubeConfig.from_file(kubeconfig) if kubeconfig else pykube.KubeConfig.from_env()
    keep_inline_data_private(config)
    return config


def keep_inline_data_private(config: pykube.KubeConfig) -> None:
    """Replace pykube's shared temp files for inline data with PrivateFile entries."""
    parsed = {"clusters": config.clusters, "users": config.users}
    for section, body_key, field in _INLINE:
        for index, entry in enumerate(config.doc.get(section) or ()):
            data = (entry.get(body_key) or {}).get(f"{field}-data")
            if data:
                parsed[section][entry["name"]][field] = PrivateFile(data, f"{section}-{index}-{field}.pem")


def kopf_connection(config: pykube.KubeConfig, settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """What kopf.login_via_pykube builds, with the certificates as bytes instead of files."""

    def data(entry: BytesOrFile | None) -> bytes | None:
        return entry.bytes() if entry is not None else None

    cluster: dict[str, Any] = config.cluster
    user: dict[str, Any] = config.user
    return kopf.ConnectionInfo(
        server=str(cluster["server"]),  # pykube fills in a default
        ca_data=data(cluster.get("certificate-authority")),
        insecure=cluster.get("insecure-skip-tls-verify"),
        username=user.get("username"),
        password=user.get("password"),
        token=user.get("token"),
        certificate_data=data(user.get("client-certificate")),
        private_key_data=data(user.get("client-key")),
        default_namespace=config.namespace,
        proxy_url=cluster.get("proxy-url"),
        trust_env=settings.networking.trust_env,
    )
