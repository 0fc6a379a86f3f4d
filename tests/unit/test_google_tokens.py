"""GoogleTokenVerifier against ID tokens signed by keys the test controls (no network).

The keys are real RSA keys with self-signed certificates, the tokens are signed by
google-auth itself, and a fake fetch serves them the way Google's v1 certificate
endpoint does ({kid: PEM certificate}, Cache-Control max-age). google-auth checks
iat/exp against the real time, so tokens are minted relative to time.time(); the
certificate cache runs on an injected clock.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from agentops_operator.callers import Caller, Refused
from agentops_operator.google_tokens import GoogleTokenVerifier, looks_like_google_token

AUDIENCE = "agentops"
EMAIL = "sidecar@project.iam.gserviceaccount.com"


class Key:
    """An RSA key, its self-signed certificate (PEM) and a google-auth signer with key id `kid`."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kid)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1)).sign(private, hashes.SHA256()))
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        key_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        self.signer = crypt.RSASigner.from_string(key_pem, key_id=kid)

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "azp": "1234",
                                  "sub": "1234", "email": EMAIL, "email_verified": True,
                                  "iat": now, "exp": now + 3600}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        signed: bytes = jwt.encode(self.signer, claims)
        return signed.decode()


# Key generation is the slow part (~50 ms each); three keys serve every test.
KEY_A, KEY_B, KEY_C = Key("kid-a"), Key("kid-b"), Key("kid-c")


class FakeCerts:
    """Google's certificate endpoint: serves `keys` with Cache-Control max-age; counts fetches; can fail or hold."""

    def __init__(self, *keys: Key, max_age: int | None = 600) -> None:
        self.keys = list(keys)
        self.max_age = max_age
        self.urls: list[str] = []
        self.fail: Exception | int | None = None  # raise this, or answer this HTTP status
        self.release: asyncio.Event | None = None

    async def __call__(self, url: str) -> tuple[int, dict[str, str], bytes]:
        self.urls.append(url)
        if self.release is not None:
            await self.release.wait()
        if isinstance(self.fail, Exception):
            raise self.fail
        if isinstance(self.fail, int):
            return self.fail, {}, b"<html>unavailable</html>"
        headers = {} if self.max_age is None else {"Cache-Control": f"public, max-age={self.max_age}, must-revalidate"}
        return 200, headers, json.dumps({k.kid: k.cert_pem for k in self.keys}).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(certs: FakeCerts, clock: Clock | None = None, **kwargs: Any) -> GoogleTokenVerifier:
    return GoogleTokenVerifier(audience=AUDIENCE, certs_url="https://certs.test/v1", fetch=certs,
                               clock=clock or Clock(), **kwargs)


async def refusal(v: GoogleTokenVerifier, token: str) -> Refused:
    with pytest.raises(Refused) as caught:
        await v.verify(token)
    # Never echoed (a short garbage string like "" or "..." may occur in any text by chance).
    assert len(token) < 16 or token not in caught.value.message
    return caught.value


async def test_a_google_id_token_is_its_service_account() -> None:
    certs = FakeCerts(KEY_A)
    assert await verifier(certs).verify(KEY_A.token()) == Caller("google", EMAIL)
    assert certs.urls == ["https://certs.test/v1"]


async def test_both_google_issuer_spellings_are_accepted() -> None:
    v = verifier(FakeCerts(KEY_A))
    assert await v.verify(KEY_A.token(iss="accounts.google.com")) == Caller("google", EMAIL)


async def test_a_token_for_another_audience_is_refused() -> None:
    refused = await refusal(verifier(FakeCerts(KEY_A)), KEY_A.token(aud="https://other.example"))
    assert (refused.status, refused.reason) == (401, "wrong_audience")
    assert "'https://other.example'" in refused.message and "'agentops'" in refused.message


async def test_an_expired_token_is_refused() -> None:
    now = int(time.time())
    refused = await refusal(verifier(FakeCerts(KEY_A)), KEY_A.token(iat=now - 7200, exp=now - 3600))
    assert (refused.status, refused.reason) == (401, "expired")


async def test_an_expired_token_for_another_audience_is_expired_first() -> None:
    now = int(time.time())
    refused = await refusal(verifier(FakeCerts(KEY_A)), KEY_A.token(aud="x", iat=now - 7200, exp=now - 3600))
    assert refused.reason == "expired"


async def test_a_token_from_the_future_is_invalid() -> None:
    now = int(time.time())
    refused = await refusal(verifier(FakeCerts(KEY_A)), KEY_A.token(iat=now + 600, exp=now + 4200))
    assert (refused.status, refused.reason) == (401, "invalid_token")


@pytest.mark.parametrize("iss", ["https://example.com", "https://kubernetes.default.svc", ["accounts.google.com"],
                                 None])
async def test_a_token_of_another_issuer_is_invalid(iss: Any) -> None:
    refused = await refusal(verifier(FakeCerts(KEY_A)), KEY_A.token(iss=iss))
    assert (refused.status, refused.reason) == (401, "invalid_token")
    assert "issuer" in refused.message


@pytest.mark.parametrize("overrides", [{"email_verified": False}, {"email_verified": None}, {"email": None},
                                       {"email": ""}])
async def test_an_unverified_or_missing_email_is_invalid(overrides: dict[str, Any]) -> None:
    refused = await refusal(verifier(FakeCerts(KEY_A)), KEY_A.token(**overrides))
    assert (refused.status, refused.reason) == (401, "invalid_token")
    assert "email" in refused.message


async def test_a_token_signed_by_another_key_under_a_known_kid_is_invalid() -> None:
    forged = KEY_B.token().split(".")
    header_a = KEY_A.token().split(".")[0]  # claims key id kid-a, signed by kid-b's key
    refused = await refusal(verifier(FakeCerts(KEY_A)), ".".join([header_a, forged[1], forged[2]]))
    assert (refused.status, refused.reason) == (401, "invalid_token")
    assert "signature" in refused.message


async def test_a_tampered_payload_is_invalid() -> None:
    header, _, signature = KEY_A.token().split(".")
    payload = KEY_A.token(email="admin@project.iam.gserviceaccount.com").split(".")[1]
    refused = await refusal(verifier(FakeCerts(KEY_A)), f"{header}.{payload}.{signature}")
    assert refused.reason == "invalid_token"


@pytest.mark.parametrize("garbage", ["", "not a jwt", "a.b.c", "...", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9.W10.c2ln",
                                     "é.é.é", "x" * 5000])
async def test_garbage_is_invalid_and_costs_no_fetch(garbage: str) -> None:
    certs = FakeCerts(KEY_A)
    refused = await refusal(verifier(certs), garbage)
    assert (refused.status, refused.reason) == (401, "invalid_token")
    assert certs.urls == []


async def test_certificates_are_cached_until_their_max_age() -> None:
    certs, clock = FakeCerts(KEY_A, max_age=600), Clock()
    v = verifier(certs, clock)
    token = KEY_A.token()
    for _ in range(50):
        await v.verify(token)
    assert len(certs.urls) == 1
    clock.now += 599
    await v.verify(token)
    assert len(certs.urls) == 1
    clock.now += 1
    await v.verify(token)
    assert len(certs.urls) == 2 and v.fetches == 2


async def test_without_max_age_certificates_are_kept_an_hour() -> None:
    certs, clock = FakeCerts(KEY_A, max_age=None), Clock()
    v = verifier(certs, clock)
    await v.verify(KEY_A.token())
    clock.now += 3599
    await v.verify(KEY_A.token())
    assert len(certs.urls) == 1
    clock.now += 1
    await v.verify(KEY_A.token())
    assert len(certs.urls) == 2


async def test_an_unknown_kid_refetches_once_then_waits_min_refetch() -> None:
    certs, clock = FakeCerts(KEY_A), Clock()
    v = verifier(certs, clock, min_refetch_s=30)
    await v.verify(KEY_A.token())
    clock.now += 60
    certs.keys = [KEY_A, KEY_B]  # Google rotated in a new key
    assert await v.verify(KEY_B.token()) == Caller("google", EMAIL)
    assert len(certs.urls) == 2
    # A key id Google does not have (garbage, or not yet published): one look, then none for a while.
    clock.now += 1
    refused = await refusal(v, KEY_C.token())
    assert (refused.status, refused.reason) == (401, "invalid_token") and "kid-c" in refused.message
    assert len(certs.urls) == 2  # asked 1 s ago: not again
    for _ in range(20):
        await refusal(v, KEY_C.token())
    assert len(certs.urls) == 2
    clock.now += 30
    await refusal(v, KEY_C.token())
    assert len(certs.urls) == 3


async def test_concurrent_verifies_share_one_fetch() -> None:
    certs = FakeCerts(KEY_A)
    certs.release = asyncio.Event()
    v = verifier(certs)
    token = KEY_A.token()
    waiters = [asyncio.create_task(v.verify(token)) for _ in range(50)]
    await asyncio.sleep(0)
    certs.release.set()
    assert set(await asyncio.gather(*waiters)) == {Caller("google", EMAIL)}
    assert len(certs.urls) == 1


@pytest.mark.parametrize("failure", [ConnectionRefusedError("connection refused"), TimeoutError(), 503])
async def test_unreachable_certificates_are_a_503(failure: Exception | int) -> None:
    certs, clock = FakeCerts(KEY_A), Clock()
    certs.fail = failure
    v = verifier(certs, clock, min_refetch_s=30)
    refused = await refusal(v, KEY_A.token())
    assert (refused.status, refused.reason) == (503, "review_unavailable")
    # Not retried per call while Google is away ...
    assert (await refusal(v, KEY_A.token())).status == 503
    assert len(certs.urls) == 1
    # ... but once min_refetch_s has passed.
    certs.fail = None
    clock.now += 30
    assert await v.verify(KEY_A.token()) == Caller("google", EMAIL)


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}", b'{"kid-a": 1}', b'{"kid-a": "not a certificate"}'])
async def test_a_malformed_certificate_answer_is_a_503(body: bytes) -> None:
    async def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, body
    v = GoogleTokenVerifier(audience=AUDIENCE, fetch=fetch, clock=Clock())
    refused = await refusal(v, KEY_A.token())
    assert (refused.status, refused.reason) == (503, "review_unavailable")


def test_looks_like_google_token() -> None:
    assert looks_like_google_token(KEY_A.token())
    assert looks_like_google_token(KEY_A.token(iss="accounts.google.com"))
    kubernetes = KEY_A.token(iss="https://kubernetes.default.svc.cluster.local", aud=["agentops"])
    assert not looks_like_google_token(kubernetes)
    for garbage in ("", "abc", "a.b.c", "...", "é.é.é", "e30.WzFd.x", "e30.bnVsbA.x", KEY_A.token(iss=["x"])):
        assert not looks_like_google_token(garbage)


async def test_close_without_a_session_is_harmless() -> None:
    v = GoogleTokenVerifier(audience=AUDIENCE)
    await v.close()
