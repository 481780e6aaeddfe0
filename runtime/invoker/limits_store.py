"""Limits changed through the admin API, persisted in the metadata store so they survive restarts.

Configured limits are the base; a stored override for the same tenant or target replaces them.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from endure.runtime.invoker.limits import Limit, Limits
from endure.runtime.log import MetadataStore, VersionMismatch

_PREFIX = "limits/"


def _key(kind: str, name: str) -> str:
    return f"{_PREFIX}{kind}/{name}"


class LimitsStore:
    def __init__(self, metadata: MetadataStore, limits: Limits) -> None:
        self._metadata = metadata
        self.limits = limits

    async def load(self) -> None:
        for key in await self._metadata.keys(_PREFIX):  # type: ignore[attr-defined]
            found = await self._metadata.get(key)
            if found is None or not found[1]:
                continue
            kind, _, name = key[len(_PREFIX) :].partition("/")
            limit = Limit(**json.loads(found[1]))
            if kind == "tenant":
                self.limits.set_tenant(name, limit)
            elif kind == "target":
                self.limits.set_handler(name, limit)

    async def set(self, kind: str, name: str, limit: Limit | None) -> None:
        """Persist (None: remove) and apply the limits of a tenant or target."""
        key = _key(kind, name)
        value = json.dumps(asdict(limit)).encode() if limit is not None else b""
        while True:
            found = await self._metadata.get(key)
            try:
                await self._metadata.put(key, value, found[0] if found else 0)
                break
            except VersionMismatch:
                continue
        applied = limit or Limit()
        if kind == "tenant":
            self.limits.set_tenant(name, applied)
        else:
            self.limits.set_handler(name, applied)
