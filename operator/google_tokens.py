"""Verify Google-signed ID tokens (what a Cloud Run sidecar gets from its metadata server).

Verification is local: google-auth checks the RS256 signature against Google's public
certificates, the audience and the token's lifetime; this module adds Google's issuer
and a verified `email` (the service account the Agent's cloudRun runtime is matched
against, in authorization).

Google's certificates are fetched, not per call, but:

* when the cached set is past the max-age Google's answer allowed (3600 s without one);
* when a token names a key id we do not hold (Google rotated its keys), at most once per
  `min_refetch_s`, so a flood of tokens with made-up key ids cannot make us hammer Google
  (a refused fetch counts too, so an unreachable Google is not retried per call either).

Concurrent refetches share one fetch. A token is never echoed in a message: google-auth's
own errors may quote it, so refusals carry messages of ours.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from google.auth import crypt
from google.auth import exceptions as auth_errors
from google.auth import jwt

from agentops_operator.callers import Caller, Refused

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"  # {kid: PEM x509 certificate}
# Without a Cache-Control max-age, keep the certificates an hour (Google's keys live for days).
DEFAULT_MAX_AGE_S = 3600.0
# Clocks of the sidecar's metadata server, Google and this node may disagree a little.
CLOCK_SKEW_S = 10
# A certificate fetch is a single small GET; a slower answer means Google is unreachable for now.
FETCH_TIMEOUT_S = 5.0

Fetch = Callable[[str], Awaitable[tuple[int, dict[str, str], bytes]]]

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*(\d+)", re.IGNORECASE)


class CertificatesUnavailable(Exception):
    """Google's certificates could not be fetched or did not parse."""


def unverified_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The JWT's header and payload, not verified (routing and key lookup only); None for anything else."""
    try:
        # google-auth leaves these unannotated (hence the ignores); the results are JSON objects.
        header = jwt.decode_header(token)
        payload = jwt.decode(token, verify=False)
    except (ValueError, TypeError):  # google-auth's MalformedError is a ValueError, as are base64 and UTF-8 errors
        return None
    return dict(header), dict(payload)


def looks_like_google_token(token: str) -> bool:
    """Whether a bearer token claims to be issued by Google (so it goes to `GoogleTokenVerifier`); never raises."""
    claims = unverified_claims(token)
    return claims is not None and _is_google_issuer(claims[1].get("iss"))


def _is_google_issuer(iss: object) -> bool:
    return isinstance(iss, str) and iss in GOOGLE_ISSUERS  # a list or object would not even hash


class GoogleTokenVerifier:
    def __init__(
        self,
        *,
        audience: str,
        certs_url: str = GOOGLE_CERTS_URL,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.time,
        min_refetch_s: float = 30.0,
    ) -> None:
        self.audience, self.certs_url = audience, certs_url
        self._fetch: Fetch = fetch or self._http_fetch
        self._clock, self._min_refetch_s = clock, min_refetch_s
        self._session: aiohttp.ClientSession | None = None
        self._certs: dict[str, str] = {}
        self._certs_expire_at = float("-inf")
        self._last_attempt_at = float("-inf")
        self._last_error: CertificatesUnavailable | None = None
        self._refetch: asyncio.Task[None] | None = None
        self.fetches = 0  # certificate fetches started (for metrics and tests)

    async def verify(self, token: str) -> Caller:
        claims = unverified_claims(token)
        if claims is None:
            raise Refused(401, "invalid_token", "the bearer token is not a well-formed JWT")
        header, unverified = claims
        kid, alg = header.get("kid"), header.get("alg")
        if alg != "RS256":
            raise Refused(401, "invalid_token", f"ID token algorithm {alg!r} is not RS256, which Google signs with")
        if not isinstance(kid, str) or not kid:
            raise Refused(401, "invalid_token", "ID token header names no key id (kid)")
        if not all(isinstance(unverified.get(claim), (int, float)) for claim in ("iat", "exp")):
            raise Refused(401, "invalid_token", "ID token lacks a numeric iat or exp claim")
        certs = await self._certificates_for(kid)
        if kid not in certs:
            raise Refused(401, "invalid_token", f"ID token is signed with key id {kid!r}, not one of Google's "
                                                "current certificates")
        try:
            payload = jwt.decode(
                token, certs={kid: certs[kid]}, audience=self.audience, clock_skew_in_seconds=CLOCK_SKEW_S)
        except auth_errors.InvalidValue as exc:
            # The signature held (a bad one is a MalformedError); google-auth checks the
            # lifetime before the audience, and so do we, from the claims, not its wording.
            raise self._claim_refusal(unverified, exc) from exc
        except (ValueError, TypeError) as exc:
            message = f"ID token signature does not verify with Google's key {kid!r}"
            raise Refused(401, "invalid_token", message) from exc
        return self._caller(dict(payload))

    async def close(self) -> None:
        """Cancel a refetch in flight and close the HTTP session (operator shutdown)."""
        if self._refetch is not None:
            self._refetch.cancel()
            await asyncio.gather(self._refetch, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _claim_refusal(self, payload: Mapping[str, Any], exc: auth_errors.InvalidValue) -> Refused:
        exp, aud = payload.get("exp"), payload.get("aud")
        # google-auth compares with the real time, whatever our (injectable) clock says.
        if isinstance(exp, (int, float)) and exp + CLOCK_SKEW_S < time.time():
            return Refused(401, "expired", f"ID token expired {time.time() - exp:.0f} s ago; fetch a fresh one from "
                                           "the metadata server before each call")
        if aud != self.audience:
            return Refused(401, "wrong_audience", f"ID token audience {aud!r} is not {self.audience!r}")
        # Issued in the future, say; google-auth's InvalidValue texts quote claims, never the token.
        return Refused(401, "invalid_token", f"ID token refused: {exc}")

    def _caller(self, payload: dict[str, Any]) -> Caller:
        iss = payload.get("iss")
        if not _is_google_issuer(iss):
            raise Refused(401, "invalid_token", f"ID token issuer {iss!r} is not Google ({sorted(GOOGLE_ISSUERS)})")
        email = payload.get("email")
        if not isinstance(email, str) or not email:
            raise Refused(401, "invalid_token", "ID token has no email claim; request it with format=full "
                                                "from the metadata server")
        if payload.get("email_verified") not in (True, "true"):
            raise Refused(401, "invalid_token", f"ID token email {email!r} is not verified by Google")
        return Caller("google", email)

    async def _certificates_for(self, kid: str) -> dict[str, str]:
        now = self._clock()
        fresh = now < self._certs_expire_at
        if fresh and kid in self._certs:
            return self._certs
        if self._refetch is None:
            if now - self._last_attempt_at < self._min_refetch_s:
                if fresh:
                    return self._certs  # an unknown key id, and we asked Google moments ago
                if self._last_error is not None:
                    raise self._unavailable(self._last_error)
                # Stale but fetched within min_refetch_s (a max-age shorter than that): use them.
                return self._certs
            self._refetch = asyncio.get_running_loop().create_task(self._fetch_certs(now))
            self._refetch.add_done_callback(self._refetch_done)
        try:
            # Shielded: one waiter giving up must not cancel the fetch the others share.
            await asyncio.shield(self._refetch)
        except CertificatesUnavailable as exc:
            raise self._unavailable(exc) from exc
        return self._certs

    def _refetch_done(self, task: asyncio.Task[None]) -> None:
        if self._refetch is task:
            self._refetch = None
        if not task.cancelled():
            task.exception()  # retrieved here, so a fetch whose waiters all left logs no warning

    @staticmethod
    def _unavailable(exc: CertificatesUnavailable) -> Refused:
        return Refused(503, "review_unavailable", f"Google's certificates could not be fetched: {exc}")

    async def _fetch_certs(self, started: float) -> None:
        self._last_attempt_at = started
        self.fetches += 1
        try:
            try:
                status, headers, body = await self._fetch(self.certs_url)
            except (OSError, TimeoutError, aiohttp.ClientError) as exc:
                raise CertificatesUnavailable(f"GET {self.certs_url}: {exc or type(exc).__name__}") from exc
            if status != 200:
                raise CertificatesUnavailable(f"GET {self.certs_url} answered {status}")
            certs = _parse_certs(body)
        except CertificatesUnavailable as exc:
            self._last_error = exc
            log.warning("%s", exc)
            raise
        self._certs, self._last_error = certs, None
        self._certs_expire_at = started + _max_age(headers)
        log.info("Google's certificates fetched: key ids %s, kept %.0f s", sorted(certs), _max_age(headers))

    async def _http_fetch(self, url: str) -> tuple[int, dict[str, str], bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S))
        async with self._session.get(url) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()


def _max_age(headers: Mapping[str, str]) -> float:
    cache_control = next((v for k, v in headers.items() if k.lower() == "cache-control"), "")
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else DEFAULT_MAX_AGE_S


def _parse_certs(body: bytes) -> dict[str, str]:
    try:
        certs = json.loads(body)
    except ValueError as exc:
        raise CertificatesUnavailable(f"the certificates are not JSON: {exc}") from exc
    if not isinstance(certs, dict) or not certs or not all(isinstance(v, str) for v in certs.values()):
        raise CertificatesUnavailable("the certificates are not a JSON object of key id to PEM certificate")
    for kid, pem in certs.items():
        try:
            crypt.RSAVerifier.from_string(pem)
        except ValueError as exc:
            raise CertificatesUnavailable(f"the certificate of key id {kid!r} does not parse: {exc}") from exc
    return certs
