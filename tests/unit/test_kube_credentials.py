"""Inline kubeconfig credentials live in a private directory and survive being deleted."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

import kopf
import pykube
import pytest
import yaml

from agentops import kube_credentials

pytestmark = pytest.mark.timeout(10)


def kubeconfig(tmp_path: Path, ca: bytes, cert: bytes, key: bytes) -> Path:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(ca)}}],
        "users": [{"name": "u", "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "demo"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def material() -> tuple[bytes, bytes, bytes]:
    return tuple(f"-----BEGIN {kind}-----\n{secrets.token_hex(16)}\n".encode() for kind in ("CA", "CERT", "KEY"))  # type: ignore[return-value]


def test_inline_data_is_written_privately_and_never_to_a_shared_file(tmp_path: Path, material: tuple[bytes, bytes, bytes]) -> None:
    ca, cert, key = material
    config = kube_credentials.load(str(kubeconfig(tmp_path, ca, cert, key)))
    files = [Path(config.cluster["certificate-authority"].filename()),
             Path(config.user["client-certificate"].filename()), Path(config.user["client-key"].filename())]
    assert [f.read_bytes() for f in files] == [ca, cert, key]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    # pykube's own shared file for this data (named by its md5) was never written.
    for data in material:
        assert not Path(tempfile.gettempdir(), f"pykube-ng.{hashlib.md5(data).hexdigest()}.crt").exists()


def test_a_deleted_file_or_directory_is_written_again(tmp_path: Path, material: tuple[bytes, bytes, bytes]) -> None:
    ca, cert, key = material
    config = kube_credentials.load(str(kubeconfig(tmp_path, ca, cert, key)))
    first = Path(config.cluster["certificate-authority"].filename())
    first.unlink()
    assert Path(config.cluster["certificate-authority"].filename()).read_bytes() == ca
    for f in first.parent.iterdir():
        f.unlink()
    first.parent.rmdir()
    again = Path(config.user["client-key"].filename())
    assert again.read_bytes() == key and again.parent.is_dir()


def test_kopf_gets_bytes_and_no_paths(tmp_path: Path, material: tuple[bytes, bytes, bytes]) -> None:
    ca, cert, key = material
    config = kube_credentials.load(str(kubeconfig(tmp_path, ca, cert, key)))
    info = kube_credentials.kopf_connection(config, kopf.OperatorSettings())
    assert (info.ca_data, info.certificate_data, info.private_key_data) == (ca, cert, key)
    assert (info.ca_path, info.certificate_path, info.private_key_path) == (None, None, None)
    assert info.server == "https://127.0.0.1:6443" and info.default_namespace == "demo"


def test_file_references_are_left_as_they_are(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"-----BEGIN CA-----\n")
    doc = {"clusters": [{"name": "k", "cluster": {"server": "https://h", "certificate-authority": str(ca)}}],
           "users": [{"name": "u", "user": {"token": "t"}}],
           "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}], "current-context": "c"}
    config = pykube.KubeConfig(doc)
    kube_credentials.keep_inline_data_private(config)
    assert os.path.samefile(config.cluster["certificate-authority"].filename(), ca)


def test_threads_sharing_a_client_always_get_a_file_that_exists(tmp_path: Path, material: tuple[bytes, bytes, bytes]) -> None:
    # The UI's watches start together on one client; before the lock, a thread could
    # be handed a path another thread had chosen but not yet written.
    missing = 0
    for _ in range(50):
        config = kube_credentials.load(str(kubeconfig(tmp_path, *material)))
        entry = config.cluster["certificate-authority"]
        seen: list[bool] = []
        threads = [threading.Thread(target=lambda: seen.append(os.path.exists(entry.filename()))) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        missing += seen.count(False)
    assert missing == 0
