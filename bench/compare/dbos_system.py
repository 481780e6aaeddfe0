"""DBOS Transact: a throwaway Postgres cluster + an application process running the workflows.

Server: Debian's PostgreSQL (initdb + postgres in a temp dir, as the `postgres` user when run as
root) on a free 127.0.0.1 port with fsync=on, synchronous_commit=on, full_page_writes=on (the
defaults, set explicitly). Service: `dbos_app` (hypercorn, one process, uvloop) with DBOS's
system database and the application table in that cluster. Client: HTTP/1.1 (httpx) to the
application's routes, which start the workflows in-process, the way DBOS apps are called.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from endure.bench.compare.common import (
    INSTALL_PY,
    Request,
    System,
    Unavailable,
    free_port,
    require_modules,
    wait_for_http,
    wait_for_port,
)

PG_INSTALL = "apt-get install -y postgresql"


def pg_bindir() -> Path:
    """The folder with initdb and postgres: ENDURE_PG_BINDIR, Debian's newest, or PATH."""
    if os.environ.get("ENDURE_PG_BINDIR"):
        return Path(os.environ["ENDURE_PG_BINDIR"])
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if debian:
        return Path(debian[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    raise Unavailable(f"dbos: PostgreSQL (initdb, postgres) not found; install with: {PG_INSTALL}"
                      " (or set ENDURE_PG_BINDIR)")


class DbosSystem(System):
    name = "dbos"
    durability = ("PostgreSQL fsync=on, synchronous_commit=on, full_page_writes=on: every workflow "
                  "status / step checkpoint commit is fsynced (WAL) before the workflow moves on")

    @staticmethod
    def check() -> None:
        require_modules("dbos", "dbos", "hypercorn", "httpx", "psycopg", install=INSTALL_PY)
        pg_bindir()

    def start(self, concurrency: int) -> None:
        from importlib.metadata import version

        bindir = pg_bindir()
        self.versions["postgres"] = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True,
                                                   text=True, timeout=30, check=False).stdout.strip()
        self.versions["dbos"] = version("dbos")
        pgdata = self.dir / "pgdata"
        as_user: dict[str, str] = {}
        if os.geteuid() == 0:  # postgres refuses to run as root
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError as e:
                raise Unavailable("dbos: running as root and no 'postgres' user to run PostgreSQL as; "
                                  f"install with: {PG_INSTALL}") from e
            as_user = {"user": "postgres", "group": "postgres"}
            os.chmod(self.dir, 0o755)
            pgdata.mkdir()
            shutil.chown(pgdata, "postgres", "postgres")
            for name in ("postgres", "initdb"):
                self.log(name).touch()
                shutil.chown(self.log(name), "postgres", "postgres")
        init = self.spawn("initdb", [str(bindir / "initdb"), "-D", str(pgdata), "-U", "postgres", "-A", "trust",
                                     "-E", "UTF8", "--no-sync", "--no-instructions"], **as_user)
        if init.wait(timeout=120) != 0:
            raise RuntimeError(f"initdb failed; see {self.log('initdb').read_text()[-2000:]}")
        del self.procs["initdb"]
        pg_port, app_port = free_port(), free_port()
        pool = max(16, min(64, concurrency))
        pg = self.spawn("postgres", [str(bindir / "postgres"), "-D", str(pgdata), "-p", str(pg_port),
                                     "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={pgdata}",
                                     "-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on",
                                     "-c", f"max_connections={2 * pool + 20}", "-c", "shared_buffers=256MB"],
                        **as_user)
        wait_for_port(pg_port, pg, self.log("postgres"))
        base = f"postgresql://postgres@127.0.0.1:{pg_port}"
        self._wait_for_pg(base + "/postgres")
        service = self.spawn("service", [sys.executable, "-m", "endure.bench.compare.dbos_app",
                                         "--port", str(app_port), "--database-url", base + "/postgres",
                                         "--system-database-url", base + "/dbos_bench_sys",
                                         "--pool-size", str(pool)])
        self.app_port = app_port
        wait_for_http(f"http://127.0.0.1:{app_port}/health", service, self.log("service"), timeout=120)

    def _wait_for_pg(self, url: str) -> None:
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    async def client(self, workload: str, concurrency: int) -> tuple[Request, Callable[[], Awaitable[None]]]:
        import httpx

        https = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.app_port}", timeout=60,
                                   limits=httpx.Limits(max_connections=None, max_keepalive_connections=None))
                 for _ in range(max(1, min(8, concurrency // 16)))]

        async def post(i: int, path: str) -> object:
            resp = await https[i % len(https)].post(path, content=b"1")
            if resp.status_code != 200:
                raise RuntimeError(f"dbos app: {resp.status_code} {resp.text[:200]}")
            return resp.json()

        paths = {"noop": lambda i: "/noop", "steps3": lambda i: "/steps3", "counter": lambda i: f"/counter/k{i}"}
        if workload not in paths:
            raise Unavailable(f"dbos: unknown workload {workload}")
        path_of = paths[workload]

        async def request(i: int) -> object:
            return await post(i, path_of(i))

        await request(0)  # fail fast when the workflow does not run

        async def close() -> None:
            for c in https:
                await c.aclose()

        return request, close
