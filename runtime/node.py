"""Node: one runtime process, wiring log → partition processors → invoker, and the gRPC servers.

Data flows one way: the ingress appends to a partition's log, its processor applies the records
and hands the leader's effects to the invoker (work for workers) and to the ingress's waiting
clients (results); what workers send comes back only through the log.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from endure.proto import admin_pb2, ingress_pb2, worker_pb2
from endure.proto import admin_pb2_grpc as apb_grpc
from endure.proto import ingress_pb2_grpc as ipb_grpc
from endure.proto import partition_pb2_grpc as ppb_grpc
from endure.proto import worker_pb2 as wpb
from endure.proto import worker_pb2_grpc as wpb_grpc
from endure.runtime.admin.service import AdminService
from endure.runtime.auth import TenantResolver, TokenInterceptor
from endure.runtime.checked_requests import add_checked
from endure.runtime.cluster.controller import Controller
from endure.runtime.cluster.leadership import Leadership
from endure.runtime.cluster.membership import Membership
from endure.runtime.cluster.partition_table import UNASSIGNED
from endure.runtime.config import ConfigError, LimitConfig, NodeConfig, stream_limits, tenant_network
from endure.runtime.console.sources import ConsoleSources, NodeHealth
from endure.runtime.data_format import open_data_dir
from endure.runtime.datadir import DataDirLock, DataDirLocked
from endure.runtime.ingress.service import IngressService
from endure.runtime.invoker.endpoint import WorkerEndpoint
from endure.runtime.invoker.invoker import Invoker, InvokerConfig
from endure.runtime.invoker.limits import Limit, Limits
from endure.runtime.invoker.limits_store import LimitsStore
from endure.runtime.invoker.registry import ServiceRegistry
from endure.runtime.invoker.session import SessionOverflow
from endure.runtime.log import MetadataStore, NodeLog, VersionMismatch
from endure.runtime.metrics import NodeMetrics
from endure.runtime.partition.api import LocalPartition, Partition, local_partitions
from endure.runtime.partition.effects import Effect, InvocationCompleted, StreamAppended
from endure.runtime.partition.processor import PartitionProcessor
from endure.runtime.partition.remote import SERVICE_NAME as PARTITION_SERVICE
from endure.runtime.partition.remote import PartitionServicer
from endure.runtime.partition.snapshots import (
    SnapshotError,
    SnapshotStore,
    Snapshotter,
    open_snapshot_store,
    restore_latest,
)
from endure.runtime.partition.state_machine import StateMachine, StateMachineConfig
from endure.runtime.partition.store import PartitionStore
from endure.runtime.partition.waiters import CompletionWaiters
from endure.runtime.peers import Peer, PeerPartition, peer_partitions
from endure.runtime.placement import (
    INGRESS_FILE,
    METRICS_FILE,
    Placement,
    Routes,
    check_placement,
    clear_endpoint,
    node_dir,
    read_endpoint,
    routes,
    write_endpoint,
)

if TYPE_CHECKING:  # needs the `cluster` extra (nats-py): imported when cluster mode starts
    from endure.runtime.cluster.cluster_log import ClusterLog
    from endure.runtime.console.server import ConsoleServer  # needs aiohttp: imported when the console starts

log = logging.getLogger("endure.node")

_PARTITIONS_KEY = "cluster/partitions"
_MAX_MESSAGE = 64 << 20


def _invoker_config(cfg: NodeConfig, *, ack_after_apply: bool = False) -> InvokerConfig:
    return InvokerConfig(eager_state_bytes=cfg.eager_state_bytes, max_queued=cfg.max_queued,
                         stream_limits=stream_limits(cfg), tenant_network=tenant_network(cfg),
                         ack_after_apply=ack_after_apply)


class _Effects:
    """Routes the leaders' effects: results to waiting clients, the rest to the invoker."""

    def __init__(self, waiters: CompletionWaiters, metrics: NodeMetrics) -> None:
        self.waiters = waiters
        self.metrics = metrics
        self.invoker: Invoker | None = None

    def on_effects(self, partition: int, effects: Sequence[Effect]) -> None:
        rest = []
        for effect in effects:
            if isinstance(effect, InvocationCompleted):
                self.waiters.complete(effect.invocation_id, effect.status)
                self.waiters.streams.wake(effect.invocation_id)  # its subscribers read the end
                self.metrics.observe_finished(effect.status)
            elif isinstance(effect, StreamAppended):
                self.waiters.streams.wake(effect.invocation_id)
            else:
                rest.append(effect)
        if rest and self.invoker is not None:
            self.invoker.on_effects(partition, rest)

    def on_leadership(self, partition: int, leading: bool) -> None:
        if self.invoker is not None:
            self.invoker.on_leadership(partition, leading)


class Node:
    """One node of `config.nodes` (one process of `endure serve --processes N`; see
    `endure.runtime.placement`): it runs the processors of the partitions it owns, and reaches the
    others through their owners (`endure.runtime.peers`)."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.placement = Placement(config.nodes, config.partitions)
        self.dir: Path = node_dir(config.data_dir, config.node_id, config.nodes)  # its log, metadata, stores
        self.log: NodeLog | None = None
        self.processors: dict[int, PartitionProcessor] = {}
        self.partitions: dict[int, LocalPartition] = {}  # the ones this node owns
        self.all_partitions: dict[int, Partition] = {}  # every partition: local, or through its owner
        self.peers: dict[int, Peer] = {}
        self.invoker: Invoker | None = None
        self.registry: ServiceRegistry | None = None
        self.ingress: IngressService | None = None
        self.waiters: CompletionWaiters | None = None
        self.metrics = NodeMetrics()
        self._servers: list[grpc.aio.Server] = []
        self.ingress_port = 0
        self.own_ingress: str | None = None  # with several nodes: an ingress address of this node alone
        self.admin_port = 0
        self.metrics_port = 0
        self.admin_service: AdminService | None = None
        self.console: ConsoleServer | None = None  # the web console (`console` setting), once it serves
        self.console_address = ""
        self._lock: DataDirLock | None = None
        # Cluster mode only (config.cluster):
        self.cluster_log: ClusterLog | None = None
        self.membership: Membership | None = None
        self.leadership: Leadership | None = None
        self.controller: Controller | None = None
        self._peer_metadata: tuple[tuple[str, str], ...] = ()
        self.snapshots: SnapshotStore | None = None
        self.snapshotters: dict[int, Snapshotter] = {}

    async def start(self) -> None:
        """Open the data directory (DataDirLocked if another runtime has it), then serve."""
        cfg = self.config
        if cfg.cluster is not None:
            await self._start_cluster()
            return
        self._lock = DataDirLock.acquire(self.dir)
        try:
            if cfg.nodes == 1:  # refuse a data dir made by --processes N > 1 (the supervisor checks the others)
                check_placement(cfg.data_dir, self.placement)
            else:
                clear_endpoint(self.dir)  # a stale address (this node was killed) is withdrawn until it serves
                clear_endpoint(self.dir, INGRESS_FILE)
                clear_endpoint(self.dir, METRICS_FILE)
            open_data_dir(self.dir)  # before anything reads the data: refuse a newer format, migrate an older one
            await self._open_log()
        except BaseException:
            self._release_lock()
            raise
        assert self.log is not None
        self.log.store.on_batch = self.metrics.observe_log_batch
        await self._check_partition_count()
        self.registry = ServiceRegistry(self.log.metadata)
        await self.registry.load()
        limits = Limits({name: _limit(t, t.weight) for name, t in cfg.tenants.items()},
                        {name: _limit(h) for name, h in cfg.handler_limits.items()}, nodes=cfg.nodes)
        limits_store = LimitsStore(self.log.metadata, limits)
        await limits_store.load()
        waiters = self.waiters = CompletionWaiters(cfg.max_waiting_calls)
        effects = _Effects(waiters, self.metrics)
        node_name = cfg.node_name if cfg.nodes == 1 or cfg.node_name != "node-0" else f"node-{cfg.node_id}"
        for p in self.placement.owned(cfg.node_id):
            store = PartitionStore(self.dir / "partitions" / f"p{p}")
            machine = StateMachine(StateMachineConfig(p, cfg.partitions, int(cfg.retention_s * 1000),
                                                    stream_limits(cfg)))
            # Outbox messages go to their partition through self.all_partitions, looked up at delivery
            # time: it is built after the processors.
            self.processors[p] = PartitionProcessor(p, self.log.log(p), store, machine, effects,
                                                    lambda target: self.all_partitions[target], node=node_name)
        self.partitions = local_partitions(self.processors.values(), waiters)  # the one way into them
        self._connect_peers()
        self.invoker = Invoker(self.registry, self.partitions, _invoker_config(cfg), limits)
        effects.invoker = self.invoker

        self._build_servers(limits, limits_store)
        for processor in self.processors.values():
            await processor.start()
        for server in self._servers:
            await server.start()
        await self._start_console()
        if cfg.nodes > 1:  # serving: the peers may call it now
            host = cfg.admin.rpartition(":")[0] if cfg.admin else "127.0.0.1"
            write_endpoint(self.dir, f"{host}:{self.admin_port}")
            assert self.own_ingress is not None
            write_endpoint(self.dir, self.own_ingress, INGRESS_FILE)
            if self.metrics_port:
                metrics_host = cfg.metrics.rpartition(":")[0] or "127.0.0.1"
                write_endpoint(self.dir, f"{metrics_host}:{self.metrics_port}", METRICS_FILE)
        log.info("endure node %d/%d up: ingress 127.0.0.1:%d, admin and workers %d, partitions %s in %s",
                 cfg.node_id, cfg.nodes, self.ingress_port, self.admin_port, sorted(self.partitions), self.dir)

    def _build_servers(self, limits: Limits, limits_store: LimitsStore) -> None:
        """The ingress and the admin (+ worker endpoint, PartitionService) servers, bound, not started."""
        cfg = self.config
        assert self.registry is not None and self.invoker is not None
        options = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            # Workers (and long-waiting clients) ping every 10 s to notice a dead peer on idle streams;
            # gRPC's server default answers pings more often than every 5 min with GOAWAY
            # "too_many_pings", which dropped idle worker streams every ~40 s.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
            ("grpc.http2.max_ping_strikes", 0),
        ]
        # gRPC core cancels (CANCELLED, not RESOURCE_EXHAUSTED) calls that wait unaccepted while more
        # than max_pending_requests (default 1000) do: a burst of a few thousand calls would lose some
        # before the ingress sees them. Our own limits answer overload; keep core's bound well above them.
        pending = 4 * cfg.max_waiting_calls
        ingress = grpc.aio.server(options=[*options, ("grpc.server.max_pending_requests", pending),
                                           ("grpc.server.max_pending_requests_hard_limit", pending)])
        tenants = TenantResolver(cfg.auth, {name: t.api_keys_sha256 for name, t in cfg.tenants.items()})
        self.ingress = IngressService(self.registry, self.all_partitions, cfg.max_waiting_calls, cfg.max_payload_bytes,
                                      tenants=tenants, limits=limits, backlog=self.invoker.backlog,
                                      queued=self.invoker.queued, max_queued=cfg.max_queued,
                                      local=self.partitions.keys(), routes=self.routes)
        add_checked(ipb_grpc.add_IngressServicer_to_server, self.ingress, ingress)
        _add_health_and_reflection(ingress, [ingress_pb2.DESCRIPTOR.services_by_name["Ingress"].full_name])
        self.ingress_port = _bind(ingress, cfg.ingress)
        # With several nodes the shared port reaches any of them; this one reaches this node only.
        host = cfg.ingress.rpartition(":")[0] or "127.0.0.1"
        self.own_ingress = f"{host}:{_bind(ingress, f'{host}:0')}" if cfg.nodes > 1 else None
        if cfg.cluster is not None:  # a cluster node has ports of its own: clients reach it at those
            self.own_ingress = f"{cfg.cluster.advertise_host}:{self.ingress_port}"

        admin_name = admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name
        worker_name = worker_pb2.DESCRIPTOR.services_by_name["WorkerEndpoint"].full_name
        # Other nodes reach the partitions this one owns with the internal token (given by the
        # supervisor), or else with the admin token.
        internal = hashlib.sha256(cfg.internal_token.encode()).hexdigest() if cfg.internal_token else None
        # The admin API also takes the internal token: node 0's web console passes calls on to the
        # other nodes with it, whoever signed in (an admin, or a tenant seeing its own data).
        admin_tokens = (cfg.admin_token_sha256, internal) if cfg.admin_token_sha256 and internal else cfg.admin_token_sha256
        interceptor = TokenInterceptor({admin_name: admin_tokens,
                                        PARTITION_SERVICE: internal or cfg.admin_token_sha256,
                                        worker_name: cfg.worker_token_sha256})
        admin = grpc.aio.server(options=options, interceptors=[interceptor])
        self.admin_service = AdminService(self.registry, self.all_partitions, self.invoker, limits_store,
                                          peers=self._peer_admins)
        add_checked(apb_grpc.add_AdminServicer_to_server, self.admin_service, admin)
        add_checked(wpb_grpc.add_WorkerEndpointServicer_to_server,
                    WorkerEndpoint(self.invoker, self.registry, peers=self._worker_peers), admin)
        add_checked(ppb_grpc.add_PartitionServiceServicer_to_server, PartitionServicer(self.partitions), admin)
        _add_health_and_reflection(admin, [admin_name, worker_name, PARTITION_SERVICE])
        self.admin_port = _bind(admin, cfg.admin)
        self._servers = [ingress, admin]
        self.metrics.attach(self)
        if cfg.metrics:
            self.metrics_port = self.metrics.serve(cfg.metrics)


    async def _start_console(self) -> None:
        """Serve the web console on the `console` address (aiohttp, imported only then)."""
        cfg = self.config
        if not cfg.console:
            return
        from endure.runtime.console.server import ConsoleServer

        assert self.admin_service is not None and self.invoker is not None and self.registry is not None
        assert self.ingress is not None
        ingress = self.ingress
        sources = ConsoleSources(
            admin=self.admin_service, partitions=self.all_partitions, invoker=self.invoker, registry=self.registry,
            tenants=TenantResolver(cfg.auth, {name: t.api_keys_sha256 for name, t in cfg.tenants.items()}),
            auth=cfg.auth, admin_token_sha256=cfg.admin_token_sha256, peer_token=cfg.internal_token,
            configured_tenants=sorted(cfg.tenants), nodes=self.console_nodes,
            rejected=lambda: (ingress.rejected, dict(ingress.rejected_by_tenant)))
        self.console = ConsoleServer(sources)
        self.console_address = await self.console.start(cfg.console)

    def console_nodes(self) -> list[NodeHealth]:
        """The nodes as the console's cluster page shows them: addresses, partitions, up or not."""
        cfg = self.config
        if cfg.cluster is not None and self.membership is not None:
            me, live = cfg.cluster.node_id, self.membership.live_nodes()
            table = self.leadership.table if self.leadership is not None else None
            owned = {n: [p for p in range(cfg.partitions) if table is not None and table.owner(p) == n]
                     for n in {me, *live}}
            return [NodeHealth(n, live[n].admin if n in live else "", live[n].ingress if n in live else "",
                               owned[n], n in live, n == me) for n in sorted(owned)]
        out = []
        for n in range(cfg.nodes):
            me = n == cfg.node_id
            host = cfg.admin.rpartition(":")[0] if cfg.admin else "127.0.0.1"
            admin = f"{host}:{self.admin_port}" if me else read_endpoint(node_dir(cfg.data_dir, n, cfg.nodes))
            ingress = (self.own_ingress or f"127.0.0.1:{self.ingress_port}") if me else read_endpoint(
                node_dir(cfg.data_dir, n, cfg.nodes), INGRESS_FILE)
            out.append(NodeHealth(n, admin or "", ingress or "", list(self.placement.owned(n)), admin is not None, me))
        return out

    def _peer_admins(self) -> list[tuple[int, str | None]]:
        """The other nodes and their admin addresses (None while one is down), read anew each time."""
        cfg = self.config
        if cfg.cluster is not None and self.membership is not None:
            me = cfg.cluster.node_id
            return [(n, r.admin) for n, r in sorted(self.membership.live_nodes().items()) if n != me]
        return [(n, read_endpoint(node_dir(cfg.data_dir, n, cfg.nodes))) for n in range(cfg.nodes) if n != cfg.node_id]

    def routes(self) -> Routes:
        """The ingress's GetRoutes: the placement and each node's own ingress address, read anew
        from the nodes' published files at each request (a restarted node's new port is found)."""
        if self.config.cluster is not None:
            return self._cluster_routes()
        return routes(self.config.data_dir, self.placement)

    def _worker_peers(self) -> list[str]:
        """Where a worker that registered here also connects: the other nodes' worker endpoints (read
        anew at each registration, so a restarted node's new port is found), then the static list."""
        cfg = self.config
        if cfg.cluster is not None and self.membership is not None:
            me = cfg.cluster.node_id
            return [r.admin for n, r in sorted(self.membership.live_nodes().items()) if n != me]
        others = [read_endpoint(node_dir(cfg.data_dir, n, cfg.nodes)) for n in range(cfg.nodes) if n != cfg.node_id]
        return [a for a in others if a] + [a for a in cfg.worker_peers if a not in others]

    def _connect_peers(self) -> None:
        """The full map: this node's partitions, and a PeerPartition to the owner of each other one."""
        cfg = self.config
        token = cfg.internal_token
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        owners = {p: self.placement.owner(p) for p in range(cfg.partitions) if p not in self.partitions}
        self.peers = {n: Peer(n, node_dir(cfg.data_dir, n, cfg.nodes), metadata=metadata)
                      for n in sorted(set(owners.values()))}
        remote: dict[int, Partition] = dict(peer_partitions(self.peers, owners))
        self.all_partitions = {p: self.partitions[p] if p in self.partitions else remote[p]
                               for p in range(cfg.partitions)}

    async def _open_log(self) -> None:
        cfg = self.config
        try:
            self.log = await NodeLog.open(self.dir, cfg.partitions, max_pending_records=cfg.max_pending_appends)
        except Exception as exc:
            # We hold our lock but RocksDB's is taken: a process that does not take ours (a tool,
            # an older runtime) has the log open; its pid is unknown.
            if _is_rocksdb_lock_error(exc):
                raise DataDirLocked(self.dir.resolve(), None) from exc
            raise

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    async def _check_partition_count(self, metadata: MetadataStore | None = None) -> None:
        if metadata is None:
            assert self.log is not None
            metadata = self.log.metadata
        found = await metadata.get(_PARTITIONS_KEY)
        if found is None:
            try:
                await metadata.put(_PARTITIONS_KEY, str(self.config.partitions).encode(), 0)
            except VersionMismatch:  # another node of the cluster created it meanwhile
                await self._check_partition_count(metadata)
        elif int(found[1]) != self.config.partitions:
            if self.log is not None:
                await self.log.close()
            if self.cluster_log is not None:
                await self.cluster_log.close()
            self._release_lock()
            raise ConfigError(f"{self.dir} was created with {int(found[1])} partitions; the partition "
                              f"count is fixed when a cluster is created (asked for {self.config.partitions})")

    # ------------------------------------------------------------------ cluster mode

    async def _start_cluster(self) -> None:
        """Cluster mode: the log and metadata on JetStream; lead what the partition table assigns.

        The node serves at once (leading nothing), takes its lease, and then follows the table that
        the controller (the live node with the lowest id) keeps."""
        cfg = self.config
        cc = cfg.cluster
        assert cc is not None
        try:
            from endure.runtime.cluster.cluster_log import ClusterLog
        except ImportError as exc:
            raise ConfigError(f"cluster mode needs the cluster extra (pip install 'endure[cluster]'): {exc}") from exc
        self._lock = DataDirLock.acquire(self.dir)
        try:
            open_data_dir(self.dir)  # the partition stores are local (a cache of the log)
            self.cluster_log = await ClusterLog.open(cc)
        except BaseException:
            self._release_lock()
            raise
        metadata = self.cluster_log.metadata
        await self._check_partition_count(metadata)
        url = cc.snapshots or f"dir:{(self.dir / 'snapshots').resolve()}"
        self.snapshots = open_snapshot_store(url) if url != "off" else None
        self.registry = ServiceRegistry(metadata)
        await self.registry.load()
        limits = Limits({name: _limit(t, t.weight) for name, t in cfg.tenants.items()},
                        {name: _limit(h) for name, h in cfg.handler_limits.items()})
        limits_store = LimitsStore(metadata, limits)
        await limits_store.load()
        self.waiters = CompletionWaiters(cfg.max_waiting_calls)
        self._effects = _Effects(self.waiters, self.metrics)
        self.invoker = Invoker(self.registry, self.partitions, _invoker_config(cfg, ack_after_apply=True), limits)
        self._effects.invoker = self.invoker
        token = cfg.internal_token or None
        self._peer_metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.all_partitions.update({p: self._remote(p, UNASSIGNED) for p in range(cfg.partitions)})
        self._build_servers(limits, limits_store)
        for server in self._servers:
            await server.start()
        await self._start_console()
        admin = f"{cc.advertise_host}:{self.admin_port}"
        assert self.own_ingress is not None
        self.membership = Membership(metadata, cc.node_id, admin, self.own_ingress, cc.lease_ms,
                                     on_lost=self._lease_lost, on_change=self._nodes_changed)
        await self.membership.register()
        membership = self.membership
        self.leadership = Leadership(cc.node_id, lambda: membership.incarnation, self.partitions,
                                     self.all_partitions, self._open_local, self._close_local, self._remote,
                                     may_lead=lambda: membership.holds_lease)
        self.controller = Controller(metadata, membership, cc.node_id, cfg.partitions, self.leadership.apply)
        self.controller.start()
        log.info("endure cluster node %d up: ingress %s, admin and workers %s, NATS %s",
                 cc.node_id, self.own_ingress, admin, ", ".join(cc.nats))

    async def _open_local(self, p: int, epoch: int) -> LocalPartition:
        cfg = self.config
        assert self.cluster_log is not None and cfg.cluster is not None and self.waiters is not None
        path = self.dir / "partitions" / f"p{p}"
        metadata = self.cluster_log.metadata
        if self.snapshots is not None:  # a newer snapshot than this node's own copy: start from it
            try:
                lsn = await restore_latest(metadata, self.snapshots, p, path)
                if lsn is not None:
                    log.info("partition %d: restored the snapshot at LSN %d", p, lsn)
            except SnapshotError as exc:
                log.warning("partition %d: no snapshot restored (%s); replaying the log", p, exc)
        store = PartitionStore(path)
        try:
            vlog = await self.cluster_log.log(p)
        except BaseException:
            store.close()
            raise
        machine = StateMachine(StateMachineConfig(p, cfg.partitions, int(cfg.retention_s * 1000),
                                                    stream_limits(cfg)))
        processor = PartitionProcessor(p, vlog, store, machine, self._effects,
                                       lambda target: self.all_partitions[target],
                                       node=f"node-{cfg.cluster.node_id}", epoch=epoch)
        self.processors[p] = processor
        await processor.start()
        if self.snapshots is not None:
            snapshotter = self.snapshotters[p] = Snapshotter(
                p, store, vlog, metadata, self.snapshots, interval_s=cfg.snapshot_interval_s,
                every_records=cfg.snapshot_every_records, keep=cfg.snapshot_keep,
                applied_lsn=lambda: processor.applied_lsn)
            snapshotter.start()
        return LocalPartition(processor, self.waiters)

    async def _close_local(self, p: int) -> None:
        snapshotter = self.snapshotters.pop(p, None)
        if snapshotter is not None:
            await snapshotter.stop()  # before the store closes: it may be taking a checkpoint
        processor = self.processors.pop(p, None)
        if processor is not None:
            await processor.stop()
            processor.store.close()
        if self.cluster_log is not None:
            self.cluster_log.forget(p)

    def _remote(self, p: int, node: int) -> Partition:
        peer = self.peers.get(node)
        if peer is None:
            peer = self.peers[node] = Peer(node, lambda: self.membership.address_of(node) if self.membership else None,
                                           metadata=self._peer_metadata)
        return PeerPartition(p, peer)

    def _nodes_changed(self) -> None:
        """Tell every connected worker the nodes' endpoints now, so it serves a node that joined."""
        if self.invoker is None:
            return
        frame = wpb.RuntimeFrame(peers=wpb.PeersFrame(peers=self._worker_peers()))
        for session in list(self.invoker.sessions.values()):
            try:
                session.send(frame)
            except SessionOverflow:
                pass  # that worker stopped reading: its session is closed and it reconnects

    def _lease_lost(self) -> None:
        if self.leadership is not None:
            asyncio.ensure_future(self.leadership.stop_all())

    def _cluster_routes(self) -> Routes:
        assert self.membership is not None and self.config.cluster is not None
        me = self.config.cluster.node_id
        live = self.membership.live_nodes()
        size = max([me, *live]) + 1
        addresses = tuple(live[n].ingress if n in live else "" for n in range(size))
        table = self.leadership.table if self.leadership is not None else None
        owners = tuple(me if table is None or table.owner(p) == UNASSIGNED else table.owner(p)
                       for p in range(self.config.partitions))
        return Routes(self.config.partitions, addresses, owners)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish, then flush appends and close the stores."""
        if self.console is not None:
            await self.console.stop()
        if self.controller is not None:
            await self.controller.stop()
        if self.membership is not None:
            await self.membership.stop()  # the lease ends now: the partitions move at once
        if self.config.nodes > 1:
            clear_endpoint(self.dir)
            clear_endpoint(self.dir, INGRESS_FILE)
            clear_endpoint(self.dir, METRICS_FILE)
        await asyncio.gather(*(s.stop(grace) for s in self._servers))
        for peer in self.peers.values():
            await peer.close()
        if self.leadership is not None:
            await self.leadership.stop_all()
        for processor in self.processors.values():
            await processor.stop()
        if self.log is not None:
            await self.log.close()
        for processor in self.processors.values():
            processor.store.close()
        if self.cluster_log is not None:
            await self.cluster_log.close()
        if self.snapshots is not None:
            await self.snapshots.close()
        self.metrics.close()
        self._release_lock()


def _is_rocksdb_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "IO error" in text and "LOCK" in text


def _limit(config: LimitConfig, weight: float = 1.0) -> Limit:
    return Limit(max_running=config.max_running, rate_per_s=config.rate_per_s, burst=config.burst,
                 max_backlog=config.max_backlog, weight=weight)


def _bind(server: grpc.aio.Server, address: str) -> int:
    port = server.add_insecure_port(address)
    if port == 0:
        raise ConfigError(f"cannot listen on {address}")
    return port


def _add_health_and_reflection(server: grpc.aio.Server, services: list[str]) -> None:
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in [*services, ""]:
        asyncio.get_event_loop().create_task(servicer.set(name, health_pb2.HealthCheckResponse.SERVING))
    reflection.enable_server_reflection([*services, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
