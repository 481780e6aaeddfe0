"""What the console reads from its node: handed over by `Node`, so the console holds no node."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from endure.runtime.admin.service import AdminService
    from endure.runtime.auth import TenantResolver
    from endure.runtime.invoker.invoker import Invoker
    from endure.runtime.invoker.registry import ServiceRegistry
    from endure.runtime.partition.api import Partition


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """One node as the cluster page shows it."""

    node: int
    admin: str  # "" while it publishes no address (down, or restarting)
    ingress: str
    partitions: list[int]
    up: bool
    this: bool  # the node serving the console


@dataclass(frozen=True, slots=True)
class ConsoleSources:
    admin: AdminService  # every read and change the admin API has, called in process
    partitions: Mapping[int, Partition]  # every partition: this node's, and the others' through their owners
    invoker: Invoker
    registry: ServiceRegistry
    tenants: TenantResolver  # API key -> tenant
    auth: bool
    admin_token_sha256: str | None
    peer_token: str | None  # the nodes' internal token: admin calls passed on to the other nodes carry it
    configured_tenants: list[str]
    nodes: Callable[[], list[NodeHealth]]
    rejected: Callable[[], tuple[int, dict[str, int]]]  # this node's ingress: all refusals, and by tenant
