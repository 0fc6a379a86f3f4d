"""find_binaries honours KUBEBUILDER_ASSETS and never falls back to building."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agentops import envtest_binaries


def _fake_bins(directory: Path, names: tuple[str, ...]) -> None:
    for name in names:
        (directory / name).write_text("#!/bin/sh\nexit 0\n")
        (directory / name).chmod(0o755)


@pytest.fixture(autouse=True)
def no_build(monkeypatch: pytest.MonkeyPatch) -> None:
    # With KUBEBUILDER_ASSETS set, running the build script would be a bug.
    def refuse(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        raise AssertionError(f"build script must not run: {args}")

    monkeypatch.setattr("agentops.envtest_binaries.subprocess.run", refuse)


def test_assets_directory_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bins(tmp_path, ("etcd", "kube-apiserver", "kubectl"))
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    assert envtest_binaries.find_binaries() == tmp_path


def test_missing_binary_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bins(tmp_path, ("etcd", "kubectl"))
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(envtest_binaries.EnvtestError, match=r"KUBEBUILDER_ASSETS=.*kube-apiserver"):
        envtest_binaries.find_binaries()


def test_non_executable_binary_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bins(tmp_path, ("etcd", "kube-apiserver", "kubectl"))
    (tmp_path / "etcd").chmod(0o644)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(envtest_binaries.EnvtestError, match="etcd"):
        envtest_binaries.find_binaries()
