"""NodeConfig: the runtime's settings, from a TOML file, ENDURE_* environment variables and flags.

Later sources win: defaults < file < environment < flags. Every value is checked by pydantic, so
a typo or an out-of-range number fails at start with a message naming the setting.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(Exception):
    """The configuration is invalid; the message says which setting and why."""


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(default=Path(".endure"), description="where RocksDB keeps the log and the stores")
    partitions: int = Field(default=4, ge=1, le=1024, description="fixed when the data dir is created")
    ingress: str = Field(default="127.0.0.1:7070", description="client API address")
    admin: str = Field(default="127.0.0.1:7071", description="admin API and worker endpoint address")
    node_name: str = "node-0"
    retention_s: float = Field(default=24 * 3600, ge=0, description="how long finished invocations are kept")
    max_payload_bytes: int = Field(default=4 << 20, ge=1024, le=64 << 20)
    max_waiting_calls: int = Field(default=10_000, ge=1)
    max_pending_appends: int = Field(default=50_000, ge=16, description="records queued in front of the log")
    eager_state_bytes: int = Field(default=1 << 20, ge=0)

    @field_validator("ingress", "admin")
    @classmethod
    def _address(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        return value


_ENV_PREFIX = "ENDURE_"


def load_config(file: Path | None = None, overrides: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> NodeConfig:
    values: dict[str, Any] = {}
    if file is not None:
        try:
            values.update(tomllib.loads(Path(file).read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    env = os.environ if environ is None else environ
    for name in NodeConfig.model_fields:
        key = _ENV_PREFIX + name.upper()
        if key in env:
            values[name] = env[key]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return NodeConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from exc
