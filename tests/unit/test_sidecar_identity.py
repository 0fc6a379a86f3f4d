"""The sidecar's identity tokens and its trust in the operator's certificate.

FileToken is driven through the kubelet's own way of writing a projected volume
(timestamped directory, `..data` symlink renamed over the old one); GoogleIdToken
through google-auth's real metadata-server client, against a local server answering
the metadata server's identity path with JWTs signed here; OperatorTLS with CA bundles
minted here. The clock is injected: no sleeps.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt
from google.auth.compute_engine import _metadata

from agentops.local_pki import write_pki
from agentops_sidecar.identity import GoogleIdToken, StaticToken, TokenUnavailable, token_source
from agentops_sidecar.operator_tls import OperatorTLS
from agentops_sidecar.settings import SidecarSettings

# ---------------------------------------------------------------- projected ServiceAccount token


class ProjectedVolume:
    """A directory written as the kubelet's AtomicWriter writes a projected volume.

    The payload lives in a timestamped directory; `..data` is a symlink to it and `token`
    a symlink to `..data/token`. An update writes a new timestamped directory, points a
    temporary symlink at it and renames that over `..data` (atomic), then removes the old
    directory: a reader sees the old token or the new one, never a mix or nothing.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir()
        (root / "token").symlink_to("..data/token")

    @property
    def path(self) -> str:
        return str(self.root / "token")

    def write(self, token: str) -> None:
        self.generation += 1
        payload = self.root / f"..2025_01_01_00_00_{self.generation:02d}.{os.getpid()}"
        payload.mkdir()
        (payload / "token").write_text(token)
        data = self.root / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        staging = self.root / "..data_tmp"
        staging.symlink_to(payload.name)
        os.rename(staging, data)
        if old is not None:
            for leftover in (self.root / old).iterdir():
                leftover.unlink()
            (self.root / old).rmdir()


async def test_a_rotated_projected_token_is_read_again(tmp_path: Path) -> None:
    volume = ProjectedVolume(tmp_path / "identity")
    volume.write("first-token-" + "a" * 40)
    tokens = token_source(SidecarSettings(agent="chat", operator_url="https://op", sidecar_id="pod-1",
                                          identity_token_file=volume.path))
    assert await tokens.token() == "first-token-" + "a" * 40
    assert await tokens.token() == "first-token-" + "a" * 40
    # Same length, written within the same clock tick: the new inode is what tells.
    volume.write("second-token" + "b" * 40)
    assert await tokens.token() == "second-token" + "b" * 40
    volume.write("third-token\n")  # the trailing newline of a hand-written file is not part of it
    assert await tokens.token() == "third-token"


async def test_an_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    # The stat is the whole cost of an unchanged token: a file rewritten in place with
    # its old size, mtime and inode (which the kubelet never does) still gives the old one.
    file = tmp_path / "token"
    file.write_text("a" * 40)
    before = file.stat()
    tokens = token_source(SidecarSettings(agent="chat", operator_url="https://op", sidecar_id="pod-1",
                                          identity_token_file=str(file)))
    assert await tokens.token() == "a" * 40
    file.write_text("b" * 40)
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert await tokens.token() == "a" * 40
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    assert await tokens.token() == "b" * 40


async def test_a_missing_or_empty_token_file_is_an_error_until_it_appears(tmp_path: Path) -> None:
    volume = ProjectedVolume(tmp_path / "identity")
    tokens = token_source(SidecarSettings(agent="chat", operator_url="https://op", sidecar_id="pod-1",
                                          identity_token_file=volume.path))
    with pytest.raises(TokenUnavailable) as missing:
        await tokens.token()
    assert str(missing.value) == f"cannot read the identity token {volume.path}: No such file or directory"
    volume.write("")
    with pytest.raises(TokenUnavailable, match=f"the identity token {volume.path} is empty"):
        await tokens.token()
    volume.write("token-" + "c" * 40)
    assert await tokens.token() == "token-" + "c" * 40


async def test_the_static_token_is_the_same_for_every_request() -> None:
    settings = SidecarSettings(agent="chat", operator_url="https://op", sidecar_id="pod-1", identity="static",
                               static_token="s" * 32)
    tokens = token_source(settings)
    assert isinstance(tokens, StaticToken)
    assert [await tokens.token() for _ in range(3)] == ["s" * 32] * 3


# ---------------------------------------------------------------- Google ID token

AUDIENCE = "https://agentops-operator.example"
IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"


class MetadataServer:
    """The metadata server's identity endpoint: a Google-shaped ID token per request, signed with a key made here."""

    def __init__(self, now: Callable[[], float]) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        self.signer = crypt.RSASigner.from_string(pem, key_id="test-key")
        self.now = now
        self.lifetime_s = 3600  # as Google's
        self.issued: list[str] = []
        self.refused: list[str] = []

    async def identity(self, request: web.Request) -> web.Response:
        if request.headers.get("Metadata-Flavor") != "Google":
            self.refused.append("no Metadata-Flavor header")
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
        audience = request.query.get("audience")
        if audience != AUDIENCE:
            self.refused.append(f"audience {audience}")
            return web.Response(status=404, text="no such audience here")
        now = int(self.now())
        token = jwt.encode(self.signer, {
            "iss": "https://accounts.google.com", "aud": audience, "azp": "1234567890",
            "email": "agent@project.iam.gserviceaccount.com", "email_verified": True, "sub": "1234567890",
            "iat": now, "exp": now + self.lifetime_s, "n": len(self.issued),
        }).decode()
        self.issued.append(token)
        return web.Response(text=token, content_type="application/text")


@pytest.fixture
def clock() -> list[float]:
    return [time.time()]


@pytest.fixture
async def metadata(monkeypatch: pytest.MonkeyPatch, clock: list[float]) -> AsyncIterator[MetadataServer]:
    server = MetadataServer(lambda: clock[0])
    app = web.Application()
    app.router.add_get(IDENTITY_PATH, server.identity)
    async with TestServer(app, host="127.0.0.1") as test_server:
        host = f"127.0.0.1:{test_server.port}"
        monkeypatch.setenv("GCE_METADATA_HOST", host)
        # google-auth reads GCE_METADATA_HOST once, when the module is first imported
        # (in a Cloud Run container, before the sidecar starts); in this process that
        # happened long ago, so its copy is pointed at the local server too.
        monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", host)
        yield server


async def test_a_google_id_token_is_fetched_once_and_kept_until_near_its_expiry(
    metadata: MetadataServer, clock: list[float]
) -> None:
    tokens = GoogleIdToken(AUDIENCE, now=lambda: clock[0])
    first = await tokens.token()
    assert first == metadata.issued[0] and jwt.decode(first, verify=False)["aud"] == AUDIENCE
    assert [await tokens.token() for _ in range(5)] == [first] * 5
    clock[0] += metadata.lifetime_s - 301  # 5 minutes and a second before it expires: still good
    assert await tokens.token() == first and len(metadata.issued) == 1
    clock[0] += 2  # within the last 5 minutes: replaced
    second = await tokens.token()
    assert second != first and second == metadata.issued[1]
    assert await tokens.token() == second and len(metadata.issued) == 2 and metadata.refused == []


async def test_concurrent_callers_share_one_fetch(metadata: MetadataServer, clock: list[float]) -> None:
    tokens = GoogleIdToken(AUDIENCE, now=lambda: clock[0])
    got = await asyncio.gather(*(tokens.token() for _ in range(10)))
    assert set(got) == {metadata.issued[0]} and len(metadata.issued) == 1 and tokens.fetches == 1


async def test_a_short_lived_token_is_replaced_at_half_its_life(metadata: MetadataServer, clock: list[float]) -> None:
    metadata.lifetime_s = 120  # shorter than the 5-minute margin: not fetched anew on every call
    tokens = GoogleIdToken(AUDIENCE, now=lambda: clock[0])
    first = await tokens.token()
    clock[0] += 59
    assert await tokens.token() == first
    clock[0] += 2
    assert await tokens.token() != first and len(metadata.issued) == 2


async def test_a_metadata_server_refusal_names_the_server_and_the_audience(metadata: MetadataServer, clock: list[float]) -> None:
    tokens = GoogleIdToken("https://other.example", now=lambda: clock[0])
    with pytest.raises(TokenUnavailable) as caught:
        await tokens.token()
    message = str(caught.value)
    assert message.startswith("cannot get an ID token for audience 'https://other.example' from the metadata server "
                              f"{os.environ['GCE_METADATA_HOST']}: ")
    assert "404" in message and metadata.refused == ["audience https://other.example"]
    with pytest.raises(TokenUnavailable):  # a failure is not kept: the next call asks again
        await tokens.token()
    assert len(metadata.refused) == 2


def test_the_google_identity_uses_the_audience_setting() -> None:
    tokens = token_source(SidecarSettings(agent="chat", operator_url="https://op", sidecar_id="pod-1", identity="google",
                                          token_audience=AUDIENCE))
    assert isinstance(tokens, GoogleIdToken) and tokens.audience == AUDIENCE


# ---------------------------------------------------------------- the operator's CA bundle


def ca_bundle(directory: Path) -> Path:
    """A fresh CA (and a serving certificate for 127.0.0.1 it signed) in `directory`; returns its ca.crt."""
    write_pki(directory)
    return directory / "ca.crt"


def replace_file(path: Path, content: bytes) -> None:
    """As a ConfigMap volume updates: the new file takes the old one's place at once."""
    staged = path.with_name(path.name + ".new")
    staged.write_bytes(content)
    staged.replace(path)


def issuers(context: ssl.SSLContext | bool) -> list[Any]:
    assert isinstance(context, ssl.SSLContext)
    return [cert["subject"] for cert in context.get_ca_certs()]


def test_without_a_ca_file_the_system_trust_store_decides() -> None:
    tls = OperatorTLS(None)
    assert tls.context() is True and tls.problem is None


def test_a_changed_ca_file_is_loaded_into_a_new_context(tmp_path: Path) -> None:
    first, second = ca_bundle(tmp_path / "first"), ca_bundle(tmp_path / "second")
    mounted = tmp_path / "ca.crt"
    replace_file(mounted, first.read_bytes())
    tls = OperatorTLS(str(mounted))
    context = tls.context()
    assert tls.context() is context and tls.loads == 1  # unchanged: the same context, not reloaded
    # A rollover bundle (old CA and new), then the new CA alone: each a new context.
    replace_file(mounted, first.read_bytes() + second.read_bytes())
    both = tls.context()
    assert both is not context and len(issuers(both)) == 2
    replace_file(mounted, second.read_bytes())
    assert issuers(tls.context()) == issuers(ssl.create_default_context(cafile=str(second)))
    assert tls.loads == 3 and tls.problem is None


def test_a_broken_ca_file_keeps_the_context_loaded_before(tmp_path: Path) -> None:
    good = ca_bundle(tmp_path / "pki")
    mounted = tmp_path / "ca.crt"
    replace_file(mounted, good.read_bytes())
    tls = OperatorTLS(str(mounted))
    context = tls.context()
    replace_file(mounted, b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    assert tls.context() is context
    assert tls.problem is not None and tls.problem.startswith(f"cannot load the operator CA file {mounted}: ")
    mounted.unlink()
    assert tls.context() is context
    assert tls.problem == f"cannot read the operator CA file {mounted}: No such file or directory"
    replace_file(mounted, good.read_bytes())  # fixed: loaded again, the problem gone
    assert tls.context() is not context and tls.problem is None and tls.loads == 2


def test_a_ca_file_that_never_loaded_trusts_no_one(tmp_path: Path) -> None:
    mounted = tmp_path / "ca.crt"
    mounted.write_text("garbage")
    tls = OperatorTLS(str(mounted))
    context = tls.context()
    assert isinstance(context, ssl.SSLContext) and context.get_ca_certs() == [] and tls.loads == 0
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname  # not the system's CAs, not unverified
    assert tls.problem is not None and "garbage" not in tls.problem
