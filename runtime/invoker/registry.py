"""ServiceRegistry: which services and handlers exist, their kinds, schemas and retry policies.

Workers declare their services when they connect; the registry checks the declaration, persists
it in the metadata store (so the ingress validates requests even before any worker is back after
a restart) and answers lookups from memory.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from endure.proto import records_pb2 as pb
from endure.proto import worker_pb2 as wpb
from endure.runtime.log import MetadataStore, VersionMismatch

_KEY_PREFIX = "registry/deployment/"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
_ALLOWED_KINDS: dict[int, tuple[int, ...]] = {
    wpb.SERVICE: (pb.SERVICE,),
    wpb.VIRTUAL_OBJECT: (pb.EXCLUSIVE, pb.SHARED),
    wpb.WORKFLOW: (pb.WORKFLOW_RUN, pb.WORKFLOW_SHARED),
}


class RegistrationError(Exception):
    """A worker's declaration was refused. `invalid` = malformed (else: conflicts with what exists)."""

    def __init__(self, message: str, invalid: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    service: str
    name: str
    kind: int  # records.HandlerKind
    service_kind: int  # worker.ServiceKind
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    retry: wpb.RetryPolicy
    inactivity_timeout_ms: int
    deployment_id: str
    validator: Any = field(default=None, compare=False, repr=False)

    @property
    def keyed(self) -> bool:
        return self.kind != pb.SERVICE

    def validate_input(self, value: Any) -> str | None:
        """None when value fits the input schema, else what is wrong, in words a person can act on."""
        if self.validator is None or self.validator.is_valid(value):
            return None
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"input does not match the schema of {self.service}/{self.name} at {where}: {error.message}"


def _parse_schema(text: str, where: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        schema = json.loads(text)
        jsonschema.Draft202012Validator.check_schema(schema)
    except (ValueError, jsonschema.exceptions.SchemaError) as exc:
        raise RegistrationError(f"{where}: invalid JSON schema: {exc}", invalid=True) from exc
    if not isinstance(schema, dict):
        raise RegistrationError(f"{where}: a JSON schema must be an object", invalid=True)
    return schema


def _definition(reg: wpb.Register) -> bytes:
    """The part of a registration that must be identical for one deployment version."""
    copy = wpb.Register()
    copy.CopyFrom(reg)
    copy.ClearField("concurrency")
    copy.ClearField("worker_name")
    return copy.SerializeToString(deterministic=True)


class ServiceRegistry:
    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata
        self._deployments: dict[str, wpb.Register] = {}
        self._handlers: dict[tuple[str, str], HandlerInfo] = {}
        self._services: dict[str, tuple[int, str]] = {}  # name -> (ServiceKind, deployment id)

    async def load(self) -> None:
        for key in await self._metadata.keys(_KEY_PREFIX):  # type: ignore[attr-defined]
            found = await self._metadata.get(key)
            if found is None:
                continue
            reg = wpb.Register()
            reg.ParseFromString(found[1])
            self._install(reg)

    def services(self) -> list[tuple[str, int, str, list[HandlerInfo]]]:
        """(name, service kind, deployment id, handlers) for every service, sorted by name."""
        out = []
        for name in sorted(self._services):
            kind, dep = self._services[name]
            handlers = sorted((h for (s, _), h in self._handlers.items() if s == name), key=lambda h: h.name)
            out.append((name, kind, dep, handlers))
        return out

    def deployments(self) -> dict[str, wpb.Register]:
        return dict(self._deployments)

    def handler(self, service: str, handler: str) -> HandlerInfo | None:
        return self._handlers.get((service, handler))

    def has_service(self, service: str) -> bool:
        return service in self._services

    def check(self, reg: wpb.Register) -> None:
        """Raise RegistrationError if reg is malformed or conflicts with what is registered."""
        if not reg.deployment_id:
            raise RegistrationError("registration without a deployment id", invalid=True)
        if not reg.services:
            raise RegistrationError(f"deployment {reg.deployment_id!r} registers no services", invalid=True)
        seen = set()
        for svc in reg.services:
            where = f"service {svc.name!r}"
            if not _NAME.match(svc.name):
                raise RegistrationError(f"{where}: names are letters, digits, '_', '.', '-' (max 128), "
                                        "starting with a letter or '_'", invalid=True)
            if svc.name in seen:
                raise RegistrationError(f"{where} is declared twice", invalid=True)
            seen.add(svc.name)
            allowed = _ALLOWED_KINDS.get(svc.kind)
            if allowed is None:
                raise RegistrationError(f"{where}: unknown service kind {svc.kind}", invalid=True)
            if not svc.handlers:
                raise RegistrationError(f"{where} has no handlers", invalid=True)
            names = set()
            for h in svc.handlers:
                if not _NAME.match(h.name) or h.name in names:
                    raise RegistrationError(f"{where}: bad or duplicate handler name {h.name!r}", invalid=True)
                names.add(h.name)
                if h.kind not in allowed:
                    raise RegistrationError(f"{where}: handler {h.name!r} has kind "
                                            f"{pb.HandlerKind.Name(h.kind)}, not allowed in a "
                                            f"{wpb.ServiceKind.Name(svc.kind)}", invalid=True)
                _parse_schema(h.input_schema_json, f"{where} handler {h.name!r} input")
                _parse_schema(h.output_schema_json, f"{where} handler {h.name!r} output")
            if svc.kind == wpb.WORKFLOW and sum(h.kind == pb.WORKFLOW_RUN for h in svc.handlers) != 1:
                raise RegistrationError(f"{where}: a workflow has exactly one main handler", invalid=True)
            existing = self._services.get(svc.name)
            if existing and existing[0] != svc.kind:
                raise RegistrationError(
                    f"{where} is registered by deployment {existing[1]!r} as a "
                    f"{wpb.ServiceKind.Name(existing[0])}; deployment {reg.deployment_id!r} declares it a "
                    f"{wpb.ServiceKind.Name(svc.kind)}: a service cannot change kind")
        old = self._deployments.get(reg.deployment_id)
        if old is not None and old.deployment_version == reg.deployment_version and _definition(old) != _definition(reg):
            raise RegistrationError(
                f"deployment {reg.deployment_id!r} version {reg.deployment_version!r} is already registered "
                "with different handlers or schemas: give the changed code a new deployment version")

    async def register(self, reg: wpb.Register) -> None:
        """Check, persist (compare-and-set), then serve reg's services."""
        self.check(reg)
        old = self._deployments.get(reg.deployment_id)
        if old is not None and _definition(old) == _definition(reg):
            return
        key = _KEY_PREFIX + reg.deployment_id
        stored = wpb.Register()
        stored.CopyFrom(reg)
        stored.ClearField("concurrency")
        stored.ClearField("worker_name")
        while True:
            found = await self._metadata.get(key)
            version = found[0] if found else 0
            try:
                await self._metadata.put(key, stored.SerializeToString(deterministic=True), version)
                break
            except VersionMismatch:
                continue
        self._install(stored)

    def _install(self, reg: wpb.Register) -> None:
        old = self._deployments.get(reg.deployment_id)
        if old is not None:
            for svc in old.services:
                for h in svc.handlers:
                    self._handlers.pop((svc.name, h.name), None)
                self._services.pop(svc.name, None)
        self._deployments[reg.deployment_id] = reg
        for svc in reg.services:
            self._services[svc.name] = (svc.kind, reg.deployment_id)
            for h in svc.handlers:
                in_schema = _parse_schema(h.input_schema_json, svc.name)
                self._handlers[(svc.name, h.name)] = HandlerInfo(
                    service=svc.name,
                    name=h.name,
                    kind=h.kind,
                    service_kind=svc.kind,
                    input_schema=in_schema,
                    output_schema=_parse_schema(h.output_schema_json, svc.name),
                    retry=h.retry,
                    inactivity_timeout_ms=h.inactivity_timeout_ms,
                    deployment_id=reg.deployment_id,
                    validator=jsonschema.Draft202012Validator(in_schema) if in_schema else None,
                )
