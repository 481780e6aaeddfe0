"""JSON (de)serialization of handler inputs/outputs, step results and state, from type hints.

One pydantic `TypeAdapter` per type, built once and cached, so the hot path is a single call into
pydantic-core. Schema validation beyond parsing is the runtime's job (it holds the registered
JSON schemas); the worker only parses into the declared type.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from endure.sdk.errors import SerdeError

T = TypeVar("T")

_NULL = b"null"


class Serde(Generic[T]):
    """Serializer for one type; `Any` (no hint) maps JSON to plain Python values."""

    __slots__ = ("tp", "_adapter", "_schema")

    def __init__(self, tp: Any) -> None:
        self.tp = tp
        self._adapter: TypeAdapter[Any] | None = None if tp is Any else TypeAdapter(tp)
        self._schema: str | None = None

    def dumps(self, value: Any) -> bytes:
        try:
            if self._adapter is None:
                return pydantic_core.to_json(value)
            return self._adapter.dump_json(value)
        except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
            raise SerdeError(
                f"cannot serialize {type(value).__name__} as JSON for {_type_name(self.tp)}: {exc}"
            ) from exc

    def loads(self, data: bytes) -> T:
        if not data:
            data = _NULL
        try:
            if self._adapter is None:
                return pydantic_core.from_json(data)  # type: ignore[no-any-return]
            return self._adapter.validate_json(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            errors = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
            )
            raise SerdeError(f"invalid JSON for {_type_name(self.tp)}: {errors}") from exc
        except ValueError as exc:
            raise SerdeError(f"invalid JSON for {_type_name(self.tp)}: {exc}") from exc

    def schema(self) -> str:
        """The JSON schema as a compact string; empty means 'any JSON'."""
        if self._schema is None:
            if self._adapter is None:
                self._schema = ""
            else:
                try:
                    self._schema = pydantic_core.to_json(self._adapter.json_schema()).decode()
                except Exception:  # a type pydantic can parse but not describe: accept any JSON
                    self._schema = ""
        return self._schema


_CACHE: dict[Any, Serde[Any]] = {}


def serde_for(tp: Any) -> Serde[Any]:
    """The cached Serde of a type (None/absent hint = Any)."""
    if tp is None:
        tp = type(None)
    try:
        found = _CACHE.get(tp)
    except TypeError:  # unhashable hint: build one each time (rare)
        return Serde(tp)
    if found is None:
        found = _CACHE[tp] = Serde(tp)
    return found


ANY: Serde[Any] = serde_for(Any)


def _type_name(tp: Any) -> str:
    if tp is Any:
        return "Any"
    return getattr(tp, "__name__", None) or repr(tp)
