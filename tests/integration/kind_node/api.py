"""A small asyncio client for the few API calls a kubelet makes (aiohttp, admin certificate).

The node agent authenticates with the control plane's admin client certificate, not as a
node (no ``system:node:<name>`` identity, so the Node authorizer and NodeRestriction
admission are not exercised); everything it reads and writes goes through the real API
server, with list + watch like a kubelet's informers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Api:
    def __init__(self, server: str, pki: Path) -> None:
        self.server = server
        self._ssl = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self._ssl.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def request(self, method: str, path: str, body: Obj | None = None, *,
                      content_type: str = "application/json", params: dict[str, str] | None = None) -> Obj:
        data = json.dumps(body) if body is not None else None
        async with self.session.request(method, self.server + path, data=data, params=params,
                                        headers={"Content-Type": content_type},
                                        timeout=aiohttp.ClientTimeout(total=30)) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise ApiError(resp.status, text[:500])
            result: Obj = json.loads(text) if text else {}
            return result

    async def get(self, path: str) -> Obj:
        return await self.request("GET", path)

    async def post(self, path: str, body: Obj) -> Obj:
        return await self.request("POST", path, body)

    async def merge_patch(self, path: str, body: Obj) -> Obj:
        return await self.request("PATCH", path, body, content_type="application/merge-patch+json")

    async def delete(self, path: str, body: Obj | None = None) -> Obj:
        return await self.request("DELETE", path, body)

    async def list_and_watch(self, path: str, params: dict[str, str] | None = None) -> AsyncIterator[tuple[str, Obj]]:
        """("ADDED"|"MODIFIED"|"DELETED"|"SYNC", object) forever, relisting when a watch ends badly.

        A relist yields every object as ADDED and then ("SYNC", {"names": ...}) with the
        keys of all objects present, so the caller can forget what disappeared meanwhile.
        """
        while True:
            listed = await self.request("GET", path, params=params)
            version = listed["metadata"]["resourceVersion"]
            keys = []
            for item in listed["items"]:
                keys.append(key(item))
                yield "ADDED", item
            yield "SYNC", {"keys": keys}
            while True:
                query = {**(params or {}), "watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true",
                         "timeoutSeconds": "240"}
                try:
                    async with self.session.get(self.server + path, params=query,
                                                timeout=aiohttp.ClientTimeout(total=None, sock_read=300)) as resp:
                        if resp.status >= 400:
                            log.warning("watch %s: HTTP %s; relisting", path, resp.status)
                            break
                        gone = False
                        async for line in resp.content:
                            event = json.loads(line)
                            obj = event["object"]
                            if event["type"] == "ERROR":
                                gone = True
                                break
                            version = obj["metadata"]["resourceVersion"]
                            if event["type"] != "BOOKMARK":
                                yield event["type"], obj
                        if gone:
                            break
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    log.warning("watch %s: %s; relisting", path, e)
                    await asyncio.sleep(1)
                    break


def key(obj: Obj) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
