"""NodeConfig: the runtime's settings, from a TOML file, ENDURE_* environment variables and flags.

Later sources win: defaults < file < environment < flags. Every value is checked by pydantic, so
a typo or an out-of-range number fails at start with a message naming the setting.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from endure.proto.streams import StreamLimits


class ConfigError(Exception):
    """The configuration is invalid; the message says which setting and why."""


class LimitConfig(BaseModel):
    """Flow-control limits of a tenant or of a service / handler; unset = unlimited."""

    model_config = ConfigDict(extra="forbid")

    max_running: int | None = Field(default=None, ge=1, description="attempts running at once")
    rate_per_s: float | None = Field(default=None, gt=0, description="invocations started per second")
    burst: float | None = Field(default=None, ge=1, description="token-bucket burst (default: the rate)")
    max_backlog: int | None = Field(default=None, ge=1, description="queued invocations before RESOURCE_EXHAUSTED")


class TenantConfig(LimitConfig):
    api_keys_sha256: list[str] = Field(default_factory=list, description="hex sha256 of each API key")
    weight: float = Field(default=1.0, gt=0, description="share of the invoker under contention")
    sandbox_network: list[str] = Field(default_factory=list, max_length=256,
                                       description="URL prefixes or hosts every sandbox run of this tenant's "
                                                   "invocations may reach over HTTP")

    @field_validator("api_keys_sha256")
    @classmethod
    def _hashes(cls, value: list[str]) -> list[str]:
        for h in value:
            if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                raise ValueError("API keys are stored as lowercase hex sha256 digests (64 characters)")
        return value


class ClusterConfig(BaseModel):
    """Cluster mode: the log and the metadata on NATS JetStream, partitions led by any live node."""

    model_config = ConfigDict(extra="forbid")

    nats: list[str] = Field(min_length=1, max_length=64, description="NATS server URLs (nats://HOST:PORT)")
    node_id: int = Field(ge=0, lt=1 << 16, description="this node's id, unique in the cluster")
    name: str = Field(default="endure", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                      description="the cluster's name: its streams and metadata bucket are named after it, "
                      "so several clusters can share one NATS")
    snapshots: str | None = Field(default=None, description='"dir:PATH", "s3://BUCKET/PREFIX[?endpoint=URL]" '
                                  'or "off" (default: dir:<data_dir>/snapshots, which only this machine sees)')
    replicas: int = Field(default=3, ge=1, le=5, description="JetStream replicas of each log segment and the metadata")
    lease_ms: int = Field(default=1500, ge=300, le=60_000,
                          description="a node that has not renewed its lease for this long loses its partitions")
    advertise_host: str = Field(default="127.0.0.1", description="the host other nodes and clients reach this node at")

    @field_validator("nats", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment or a flag: comma-separated
            value = [u.strip() for u in value.split(",") if u.strip()]
        for url in value if isinstance(value, list) else ():
            if not str(url).startswith(("nats://", "tls://")) or ":" not in str(url)[7:]:
                raise ValueError(f"expected nats://HOST:PORT, got {url!r}")
        return value

    @field_validator("snapshots")
    @classmethod
    def _snapshot_store(cls, value: str | None) -> str | None:
        if value is None or value.lower() in ("", "none", "off"):
            return None if value is None else "off"
        from endure.runtime.partition.snapshots.base import check_url  # not at import: it imports this module

        try:
            check_url(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value


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
    max_queued: int = Field(default=200_000, ge=1, description="runnable invocations waiting for a worker, node-wide; "
                            "beyond it the ingress answers RESOURCE_EXHAUSTED")
    eager_state_bytes: int = Field(default=1 << 20, ge=0)
    stream_max_chunk_bytes: int = Field(default=64 << 10, ge=16, le=1 << 20, description="one stream chunk")
    stream_max_bytes: int = Field(default=16 << 20, ge=1024, description="all stream chunks of one invocation")
    stream_max_events: int = Field(default=100_000, ge=10, description="stream events of one invocation")
    stream_max_chunks_per_s: int = Field(default=50_000, ge=1, description="stream writes per second of one invocation")
    metrics: str | None = Field(default="127.0.0.1:9464", description="Prometheus HTTP endpoint; none = off")
    console: str | None = Field(default="127.0.0.1:7072", description="web console HTTP address (with "
                                "--processes N, node 0 serves it); none = off")
    auth: bool = Field(default=False, description="require API keys; off = every request is tenant 'default'")
    admin_token_sha256: str | None = Field(default=None, description="hex sha256 of the admin API's bearer token")
    worker_token_sha256: str | None = Field(default=None, description="hex sha256 of the workers' bearer token")
    worker_peers: list[str] = Field(default_factory=list, max_length=64,
                                    description="HOST:PORT worker endpoints of the other nodes, told to every "
                                    "worker that registers here (ENDURE_WORKER_PEERS: comma-separated); the "
                                    "static form of the peer list a supervisor fills in")
    snapshot_interval_s: float = Field(default=60.0, gt=0, description="a snapshot at most this long after the "
                                       "last, if records were applied since")
    snapshot_every_records: int = Field(default=50_000, ge=1, description="a snapshot once this many records "
                                        "were applied since the last, even before the interval")
    snapshot_keep: int = Field(default=2, ge=1, description="snapshots kept per partition; the log is trimmed "
                               "below the oldest")
    tenants: dict[str, TenantConfig] = Field(default_factory=dict)
    handler_limits: dict[str, LimitConfig] = Field(default_factory=dict,
                                                   description='keyed "service" or "service/handler"')
    # Internal: set by the supervisor of `endure serve --processes N` for each of its nodes.
    node_id: int = Field(default=0, ge=0, description="internal: this node's index among `nodes`")
    nodes: int = Field(default=1, ge=1, le=1024, description="internal: the node processes of this data dir")
    internal_token: str | None = Field(default=None, repr=False,
                                       description="internal: the bearer token nodes call each other with")
    cluster: ClusterConfig | None = Field(default=None, description="cluster mode (NATS JetStream); none = embedded")

    @model_validator(mode="after")
    def _node(self) -> NodeConfig:
        if self.node_id >= self.nodes:
            raise ValueError(f"node_id {self.node_id} is not one of {self.nodes} nodes")
        return self

    @field_validator("ingress", "admin", "metrics", "console")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or value.lower() in ("", "none", "off"):
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        return value

    @field_validator("worker_peers", mode="before")
    @classmethod
    def _peers(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: "host:port,host:port"
            value = [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, list):
            for peer in value:
                host, sep, port = str(peer).rpartition(":")
                if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
                    raise ValueError(f"expected HOST:PORT, got {peer!r}")
        return value


_ENV_PREFIX = "ENDURE_"
_FLAGS_ONLY = frozenset({"node_id", "nodes", "cluster"})  # (cluster: read field by field below)  # the supervisor's hidden flags: not read from the environment


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
        if name in _FLAGS_ONLY:
            continue
        key = _ENV_PREFIX + name.upper()
        if key in env:
            values[name] = env[key]
    cluster = dict(values.get("cluster") or {})
    for name in ClusterConfig.model_fields:  # ENDURE_CLUSTER_NATS, ENDURE_CLUSTER_NODE_ID, ...
        key = f"{_ENV_PREFIX}CLUSTER_{name.upper()}"
        if key in env:
            cluster[name] = env[key]
    cluster.update({k: v for k, v in ((overrides or {}).get("cluster") or {}).items() if v is not None})
    if cluster:
        values["cluster"] = cluster
    values.update({k: v for k, v in (overrides or {}).items() if v is not None and k != "cluster"})
    try:
        return NodeConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from exc


def stream_limits(cfg: NodeConfig) -> StreamLimits:
    return StreamLimits(cfg.stream_max_chunk_bytes, cfg.stream_max_bytes, cfg.stream_max_events,
                        cfg.stream_max_chunks_per_s)


def tenant_network(cfg: NodeConfig) -> dict[str, tuple[str, ...]]:
    """Per tenant, the sandbox HTTP allow-list its invocations' runs get (tenants that grant any)."""
    return {name: tuple(t.sandbox_network) for name, t in cfg.tenants.items() if t.sandbox_network}
