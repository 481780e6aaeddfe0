"""ServiceRegistry: which deployment versions exist, the services and handlers each serves, and
which version of a service is the latest (where its new invocations go).

Workers declare their deployment version and its services when they connect; the registry checks
the declaration, persists it in the metadata store (so the ingress validates requests even before
any worker is back after a restart) and answers lookups from memory. Many versions of one
deployment live side by side: an invocation pinned to one runs only on workers of it.

The latest version of a service is its non-draining version of highest `order`. A version gets a
new, highest order when it is first registered or promoted; a worker of a known version that
connects again changes nothing (a reconnect during a rollout must not roll it back).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from endure.proto import records_pb2 as pb
from endure.proto import worker_pb2 as wpb
from endure.proto.deployments import ref_text
from endure.runtime.log import MetadataStore, VersionMismatch

_KEY_PREFIX = "registry/version/"  # + "id@version": a StoredDeployment; b"" once removed
_LEGACY_PREFIX = "registry/deployment/"  # + id: a Register, one version per id (before versions)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
_ALLOWED_KINDS: dict[int, tuple[int, ...]] = {
    wpb.SERVICE: (pb.SERVICE,),
    wpb.VIRTUAL_OBJECT: (pb.EXCLUSIVE, pb.SHARED),
    wpb.WORKFLOW: (pb.WORKFLOW_RUN, pb.WORKFLOW_SHARED),
}


class UnknownDeployment(LookupError):
    """No registered deployment version matches the name."""


class AmbiguousDeployment(LookupError):
    """A version (or prefix) that names more than one registered deployment version."""


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
    deployment: str  # "id@version" that registered it
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


def ref_of(reg: wpb.Register) -> str:
    return ref_text(pb.DeploymentRef(id=reg.deployment_id, version=reg.deployment_version))


@dataclass(slots=True)
class DeploymentVersion:
    """One registered deployment version: its definition, place in the order, and state."""

    ref: str
    stored: wpb.StoredDeployment
    handlers: dict[tuple[str, str], HandlerInfo]

    @property
    def services(self) -> list[str]:
        return [svc.name for svc in self.stored.register.services]

    def serves(self, service: str) -> bool:
        return any(svc.name == service for svc in self.stored.register.services)


class ServiceRegistry:
    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata
        self._versions: dict[str, DeploymentVersion] = {}  # by "id@version"
        self._latest: dict[str, str] = {}  # service -> its latest version (non-draining, highest order)
        self._newest: dict[str, str] = {}  # service -> its version of highest order, draining or not

    async def load(self) -> None:
        for key in await self._metadata.keys(_LEGACY_PREFIX):  # type: ignore[attr-defined]
            found = await self._metadata.get(key)
            if found is not None and found[1]:
                reg = wpb.Register()
                reg.ParseFromString(found[1])
                if ref_of(reg) not in self._versions:
                    self._install(wpb.StoredDeployment(register=reg, order=0))
        for key in await self._metadata.keys(_KEY_PREFIX):  # type: ignore[attr-defined]
            found = await self._metadata.get(key)
            ref = key[len(_KEY_PREFIX):]
            if found is None or not found[1]:
                self._uninstall(ref)  # removed (a legacy row of it stays behind)
                continue
            stored = wpb.StoredDeployment()
            stored.ParseFromString(found[1])
            self._install(stored)

    # ------------------------------------------------------------------ lookups

    def services(self) -> list[tuple[str, int, str, list[HandlerInfo]]]:
        """(name, service kind, latest version, its handlers) for every service, sorted by name."""
        out = []
        for name in sorted(self._newest):
            ref = self.latest(name) or self._newest[name]
            version = self._versions[ref]
            kind = next(s.kind for s in version.stored.register.services if s.name == name)
            handlers = sorted((h for (s, _), h in version.handlers.items() if s == name), key=lambda h: h.name)
            out.append((name, kind, ref, handlers))
        return out

    def versions(self) -> list[DeploymentVersion]:
        """Every registered version, oldest order first."""
        return sorted(self._versions.values(), key=lambda v: (v.stored.order, v.ref))

    def version(self, ref: str) -> DeploymentVersion | None:
        return self._versions.get(ref)

    def latest(self, service: str, excluding: str = "") -> str | None:
        """The version new invocations of service go to (passing over `excluding`); None while every
        version of it drains."""
        if excluding and self._latest.get(service) == excluding:
            others = [v for v in self._versions.values()
                      if v.ref != excluding and not v.stored.draining and v.serves(service)]
            return max(others, key=lambda v: (v.stored.order, v.ref)).ref if others else None
        return self._latest.get(service)

    def handler(self, service: str, handler: str, deployment: str = "") -> HandlerInfo | None:
        """The handler as `deployment` registered it, else as the service's latest (or newest) version."""
        ref = deployment if deployment in self._versions else (self.latest(service) or self._newest.get(service))
        version = self._versions.get(ref) if ref else None
        return version.handlers.get((service, handler)) if version is not None else None

    def has_service(self, service: str) -> bool:
        return service in self._newest

    def resolve(self, name: str) -> str:
        """The version "id@version", "version" or a unique prefix of a version names.

        Raises UnknownDeployment or AmbiguousDeployment, naming what is registered."""
        if name in self._versions:
            return name
        found = sorted(ref for ref in self._versions if ref.rpartition("@")[2].startswith(name)) if name else []
        if len(found) == 1:
            return found[0]
        if found:
            raise AmbiguousDeployment(f"{name!r} names {len(found)} deployment versions ({', '.join(found)}): "
                                      "give ID@VERSION")
        known = ", ".join(sorted(self._versions)) or "none"
        raise UnknownDeployment(f"no deployment version {name!r} is registered (registered: {known})")

    # ------------------------------------------------------------------ registration

    def check(self, reg: wpb.Register) -> None:
        """Raise RegistrationError if reg is malformed or conflicts with what is registered."""
        if not reg.deployment_id:
            raise RegistrationError("registration without a deployment id", invalid=True)
        if not reg.deployment_version:
            raise RegistrationError(f"deployment {reg.deployment_id!r} registers without a version", invalid=True)
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
            for other in self._versions.values():
                kind = next((s.kind for s in other.stored.register.services if s.name == svc.name), None)
                if kind is not None and kind != svc.kind:
                    raise RegistrationError(
                        f"{where} is registered by deployment {other.ref} as a "
                        f"{wpb.ServiceKind.Name(kind)}; deployment {ref_of(reg)} declares it a "
                        f"{wpb.ServiceKind.Name(svc.kind)}: a service cannot change kind")
        old = self._versions.get(ref_of(reg))
        if old is not None and _definition(old.stored.register) != _definition(reg):
            raise RegistrationError(
                f"deployment {reg.deployment_id!r} version {reg.deployment_version!r} is already registered "
                "with different handlers or schemas: give the changed code a new deployment version")

    async def register(self, reg: wpb.Register) -> None:
        """Check, then serve reg's version; a new version is persisted and becomes its services' latest."""
        self.check(reg)
        if ref_of(reg) in self._versions:
            return
        stored = wpb.StoredDeployment(order=self._next_order(), registered_at_ms=int(time.time() * 1000))
        stored.register.CopyFrom(reg)
        stored.register.ClearField("concurrency")
        stored.register.ClearField("worker_name")
        await self._save(ref_of(reg), stored.SerializeToString(deterministic=True))
        self._install(stored)

    async def promote(self, ref: str) -> DeploymentVersion:
        """Make ref the latest version of its services (it stops draining)."""
        version = self._known(ref)
        stored = wpb.StoredDeployment()
        stored.CopyFrom(version.stored)
        stored.order = self._next_order()
        stored.draining = False
        stored.promoted_at_ms = int(time.time() * 1000)
        await self._save(ref, stored.SerializeToString(deterministic=True))
        return self._install(stored)

    async def drain(self, ref: str) -> DeploymentVersion:
        """Send no new invocation to ref; what is pinned to it still runs there."""
        version = self._known(ref)
        stored = wpb.StoredDeployment()
        stored.CopyFrom(version.stored)
        stored.draining = True
        await self._save(ref, stored.SerializeToString(deterministic=True))
        return self._install(stored)

    async def remove(self, ref: str) -> None:
        """Forget ref (a tombstone in the metadata store: the store has no delete)."""
        self._known(ref)
        await self._save(ref, b"")
        self._uninstall(ref)

    def _known(self, ref: str) -> DeploymentVersion:
        version = self._versions.get(ref)
        if version is None:
            raise UnknownDeployment(f"no deployment version {ref!r} is registered")
        return version

    def _next_order(self) -> int:
        return max((v.stored.order for v in self._versions.values()), default=0) + 1

    async def _save(self, ref: str, value: bytes) -> None:
        key = _KEY_PREFIX + ref
        while True:
            found = await self._metadata.get(key)
            try:
                await self._metadata.put(key, value, found[0] if found else 0)
                return
            except VersionMismatch:
                continue

    def _install(self, stored: wpb.StoredDeployment) -> DeploymentVersion:
        reg = stored.register
        ref = ref_of(reg)
        handlers: dict[tuple[str, str], HandlerInfo] = {}
        for svc in reg.services:
            for h in svc.handlers:
                in_schema = _parse_schema(h.input_schema_json, svc.name)
                handlers[(svc.name, h.name)] = HandlerInfo(
                    service=svc.name,
                    name=h.name,
                    kind=h.kind,
                    service_kind=svc.kind,
                    input_schema=in_schema,
                    output_schema=_parse_schema(h.output_schema_json, svc.name),
                    retry=h.retry,
                    inactivity_timeout_ms=h.inactivity_timeout_ms,
                    deployment=ref,
                    validator=jsonschema.Draft202012Validator(in_schema) if in_schema else None,
                )
        version = self._versions[ref] = DeploymentVersion(ref, stored, handlers)
        self._rank()
        return version

    def _uninstall(self, ref: str) -> None:
        if self._versions.pop(ref, None) is not None:
            self._rank()

    def _rank(self) -> None:
        latest: dict[str, tuple[int, str]] = {}
        newest: dict[str, tuple[int, str]] = {}
        for version in self._versions.values():
            rank = (version.stored.order, version.ref)
            for service in version.services:
                if rank > newest.get(service, (-1, "")):
                    newest[service] = rank
                if not version.stored.draining and rank > latest.get(service, (-1, "")):
                    latest[service] = rank
        self._latest = {s: r for s, (_, r) in latest.items()}
        self._newest = {s: r for s, (_, r) in newest.items()}
