"""Services, virtual objects and workflows: what a user declares and a worker registers.

Decorators return the user's function unchanged, with its `HandlerDefinition` attached as
`__endure_handler__`, so the function itself is the typed handle for `ctx.call(add, pair)`.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeVar

from endure.proto import records_pb2, worker_pb2
from endure.sdk.retry import RetryPolicy
from endure.sdk.serde import Serde, serde_for

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

DEFAULT_INACTIVITY_TIMEOUT = timedelta(seconds=60)
_ATTR = "__endure_handler__"
VERSION_ENV = "ENDURE_DEPLOYMENT_VERSION"
_VERSION = re.compile(r"[A-Za-z0-9._+-]{1,64}")


def check_deployment_version(version: object, what: str = "deployment version") -> str:
    """A version given by hand is 1-64 letters, digits, '.', '_', '-' or '+' (it is shown in
    "id@version" references and typed on command lines)."""
    if not isinstance(version, str):
        raise TypeError(f"a {what} is a str, not {type(version).__name__}")
    if not _VERSION.fullmatch(version):
        raise ValueError(f"a {what} is 1-64 letters, digits, '.', '_', '-' or '+', not {version!r}")
    return version


@dataclass(eq=False)
class HandlerDefinition:
    """One handler: where it lives, its kind, and how its input/output are (de)serialized."""

    service: str
    name: str
    kind: int  # records_pb2.HandlerKind
    fn: Callable[..., Awaitable[Any]]
    retry: RetryPolicy | None = None
    inactivity_timeout: timedelta = DEFAULT_INACTIVITY_TIMEOUT
    has_input: bool = False
    _input: Serde[Any] | None = field(default=None, repr=False)
    _output: Serde[Any] | None = field(default=None, repr=False)

    @property
    def keyed(self) -> bool:
        return self.kind != records_pb2.SERVICE

    @property
    def input_serde(self) -> Serde[Any]:
        if self._input is None:
            self._resolve()
        assert self._input is not None
        return self._input

    @property
    def output_serde(self) -> Serde[Any]:
        if self._output is None:
            self._resolve()
        assert self._output is not None
        return self._output

    def _resolve(self) -> None:
        """Resolve type hints late (at App creation or first use) so forward references to models
        declared below the handler work."""
        hints = _type_hints(self.fn)
        params = list(inspect.signature(self.fn).parameters.values())
        if self.has_input:
            self._input = serde_for(hints.get(params[1].name, Any))
        else:
            self._input = serde_for(Any)
        self._output = serde_for(hints.get("return", Any))

    def to_proto(self) -> worker_pb2.HandlerDef:
        return worker_pb2.HandlerDef(
            name=self.name,
            kind=self.kind,  # type: ignore[arg-type]
            input_schema_json=self.input_serde.schema() if self.has_input else "",
            output_schema_json=self.output_serde.schema(),
            retry=self.retry.to_proto() if self.retry is not None else None,
            inactivity_timeout_ms=int(self.inactivity_timeout.total_seconds() * 1000),
        )


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=False)
    except Exception:
        # Unresolvable string annotations (e.g. a model local to a function): use what resolves.
        out: dict[str, Any] = {}
        for name, ann in getattr(fn, "__annotations__", {}).items():
            out[name] = Any if isinstance(ann, str) else ann
        return out


def handler_definition(fn: Any) -> HandlerDefinition | None:
    """The definition attached to a decorated handler function, if any."""
    return getattr(fn, _ATTR, None)


class _Base:
    """Shared machinery of the three service kinds."""

    service_kind: int = worker_pb2.SERVICE_KIND_UNSPECIFIED

    def __init__(
        self,
        name: str,
        *,
        retry: RetryPolicy | None = None,
        inactivity_timeout: timedelta | None = None,
    ) -> None:
        if not name or "/" in name:
            raise ValueError(f"invalid service name {name!r}")
        self.name = name
        self.retry = retry
        self.inactivity_timeout = inactivity_timeout or DEFAULT_INACTIVITY_TIMEOUT
        self.handlers: dict[str, HandlerDefinition] = {}

    def _decorator(
        self, kind: int, name: str | None, retry: RetryPolicy | None, inactivity_timeout: timedelta | None
    ) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            self._add(fn, name, kind, retry, inactivity_timeout)
            return fn

        return deco

    def _add(
        self,
        fn: Callable[..., Awaitable[Any]],
        name: str | None,
        kind: int,
        retry: RetryPolicy | None,
        inactivity_timeout: timedelta | None,
    ) -> HandlerDefinition:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"handler {fn.__qualname__} must be an async function")
        params = list(inspect.signature(fn).parameters.values())
        if not params or len(params) > 2:
            raise TypeError(f"handler {fn.__qualname__} must take (ctx) or (ctx, input)")
        hname = name or fn.__name__
        if hname in self.handlers:
            raise ValueError(f"{self.name} already has a handler named {hname!r}")
        defn = HandlerDefinition(
            service=self.name,
            name=hname,
            kind=kind,
            fn=fn,
            retry=retry or self.retry,
            inactivity_timeout=inactivity_timeout or self.inactivity_timeout,
            has_input=len(params) == 2,
        )
        self.handlers[hname] = defn
        setattr(fn, _ATTR, defn)
        return defn

    def to_proto(self) -> worker_pb2.ServiceDef:
        return worker_pb2.ServiceDef(
            name=self.name,
            kind=self.service_kind,  # type: ignore[arg-type]
            handlers=[h.to_proto() for h in self.handlers.values()],
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, handlers={list(self.handlers)})"


class Service(_Base):
    """Stateless handlers; any number run concurrently."""

    service_kind = worker_pb2.SERVICE

    def handler(
        self,
        name: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        inactivity_timeout: timedelta | None = None,
    ) -> Callable[[F], F]:
        return self._decorator(records_pb2.SERVICE, name, retry, inactivity_timeout)


class VirtualObject(_Base):
    """Keyed handlers with K/V state per key; exclusive handlers run one at a time per key."""

    service_kind = worker_pb2.VIRTUAL_OBJECT

    def handler(
        self,
        name: str | None = None,
        *,
        kind: Literal["exclusive", "shared"] = "exclusive",
        retry: RetryPolicy | None = None,
        inactivity_timeout: timedelta | None = None,
    ) -> Callable[[F], F]:
        if kind not in ("exclusive", "shared"):
            raise ValueError("VirtualObject handler kind must be 'exclusive' or 'shared'")
        hk = records_pb2.EXCLUSIVE if kind == "exclusive" else records_pb2.SHARED
        return self._decorator(hk, name, retry, inactivity_timeout)


class Workflow(_Base):
    """Keyed: the `main` handler runs once per key; other handlers signal or query it through
    durable promises."""

    service_kind = worker_pb2.WORKFLOW

    def main(
        self,
        name: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        inactivity_timeout: timedelta | None = None,
    ) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            if any(h.kind == records_pb2.WORKFLOW_RUN for h in self.handlers.values()):
                raise ValueError(f"workflow {self.name!r} already has a main handler")
            self._add(fn, name, records_pb2.WORKFLOW_RUN, retry, inactivity_timeout)
            return fn

        return deco

    def handler(
        self,
        name: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        inactivity_timeout: timedelta | None = None,
    ) -> Callable[[F], F]:
        return self._decorator(records_pb2.WORKFLOW_SHARED, name, retry, inactivity_timeout)


ServiceLike = Service | VirtualObject | Workflow


class App:
    """The set of services one worker serves."""

    def __init__(
        self,
        services: Iterable[ServiceLike],
        *,
        name: str | None = None,
        tools: Any = None,
        version: str | None = None,
    ) -> None:
        self.services: list[ServiceLike] = list(services)
        self.name = name
        self.version = check_deployment_version(version) if version is not None else None
        self.tools = tools  # an endure.sandbox ToolRegistry for ctx.run_tool
        self._handlers: dict[tuple[str, str], HandlerDefinition] = {}
        seen: set[str] = set()
        for svc in self.services:
            if not isinstance(svc, (Service, VirtualObject, Workflow)):
                raise TypeError(f"App takes Service, VirtualObject or Workflow, not {svc!r}")
            if svc.name in seen:
                raise ValueError(f"two services named {svc.name!r}")
            seen.add(svc.name)
            if not svc.handlers:
                raise ValueError(f"service {svc.name!r} has no handlers")
            if isinstance(svc, Workflow) and not any(
                h.kind == records_pb2.WORKFLOW_RUN for h in svc.handlers.values()
            ):
                raise ValueError(f"workflow {svc.name!r} has no @main() handler")
            for h in svc.handlers.values():
                h._resolve()
                self._handlers[(svc.name, h.name)] = h

    def lookup(self, service: str, handler: str) -> HandlerDefinition | None:
        found = self._handlers.get((service, handler))
        if found is None:
            # A handler decorated after App(...) was built (e.g. further down the module).
            for svc in self.services:
                if svc.name == service and handler in svc.handlers:
                    found = svc.handlers[handler]
                    found._resolve()
                    self._handlers[(service, handler)] = found
        return found

    def service_defs(self) -> list[worker_pb2.ServiceDef]:
        return [svc.to_proto() for svc in self.services]

    def deployment_version(self) -> str:
        """The version this code registers: invocations are pinned to it, so it must change with the
        code, not only with the signatures. In order: `App(version=...)`; else the environment's
        ENDURE_DEPLOYMENT_VERSION; else a hash of the handlers' definitions and of the source of
        every module that defines a handler."""
        if self.version is not None:
            return self.version
        env = os.environ.get(VERSION_ENV)
        if env:
            return check_deployment_version(env, VERSION_ENV)
        digest = hashlib.sha256()
        for sd in self.service_defs():
            digest.update(sd.SerializeToString(deterministic=True))
        for source in self._handler_sources():
            digest.update(len(source).to_bytes(8, "big"))
            digest.update(source)
        return digest.hexdigest()[:16]

    def _handler_sources(self) -> list[bytes]:
        """The bytes of each source file that defines a handler, in path order (the paths themselves
        are not hashed: the same code installed elsewhere is the same version)."""
        paths: set[str] = set()
        for svc in self.services:
            for h in svc.handlers.values():
                try:
                    path = inspect.getsourcefile(inspect.unwrap(h.fn))
                except TypeError:  # a builtin or C function: no source
                    continue
                if path is not None:
                    paths.add(path)
        out = []
        for path in sorted(paths):
            try:
                with open(path, "rb") as f:
                    out.append(f.read())
            except OSError:  # e.g. a module loaded from a zip without its source on disk
                continue
        return out
