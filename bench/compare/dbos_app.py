"""The three benchmark handlers written with DBOS Transact (Python), served over HTTP by hypercorn.

DBOS is a library: workflows run inside the application process and checkpoint to Postgres. The
natural way to call them from outside is the application's own HTTP endpoint, so this process is
a minimal ASGI app (one process, uvloop) whose routes start the workflows in-process:

  POST /noop          workflow that returns its input
  POST /steps3        workflow with three @DBOS.step steps
  POST /counter/KEY   workflow whose one step is a datasource transaction
                      (INSERT .. ON CONFLICT DO UPDATE on a row keyed by KEY), exactly-once

`python -m endure.bench.compare.dbos_app --port P --database-url postgresql://...`
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from dbos import DBOS, AsyncSQLAlchemyDatasource
from sqlalchemy import text

_state: dict[str, Any] = {}


@DBOS.workflow()
async def noop(value: int) -> int:
    return value


@DBOS.step()
async def _step(value: int) -> int:
    return value + 1


@DBOS.workflow()
async def steps3(value: int) -> int:
    value = await _step(value)
    value = await _step(value)
    return await _step(value)


async def _add(key: str, delta: int) -> int:
    session = _state["ds"].sql_session()
    result = await session.execute(
        text("INSERT INTO counters (key, total) VALUES (:key, :delta) "
             "ON CONFLICT (key) DO UPDATE SET total = counters.total + :delta RETURNING total"),
        {"key": key, "delta": delta})
    return int(result.scalar_one())


@DBOS.workflow()
async def counter(key: str, delta: int) -> int:
    return int(await _state["add"](key, delta))


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await _startup()
                except Exception as e:  # report it; hypercorn then exits
                    await send({"type": "lifespan.startup.failed", "message": repr(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    body = await _read_body(receive)
    status, out = 200, b""
    try:
        if path == "/health":
            out = b"ok"
        elif path == "/noop":
            out = json.dumps(await noop(json.loads(body))).encode()
        elif path == "/steps3":
            out = json.dumps(await steps3(json.loads(body))).encode()
        elif path.startswith("/counter/"):
            out = json.dumps(await counter(path.removeprefix("/counter/"), json.loads(body))).encode()
        else:
            status, out = 404, b"not found"
    except Exception as e:
        status, out = 500, repr(e).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


async def _startup() -> None:
    url = _state["url"]
    ds = await AsyncSQLAlchemyDatasource.create(url, engine_kwargs={"pool_size": _state["pool"]})
    async with ds.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS counters (key text PRIMARY KEY, total bigint NOT NULL)"))
    _state["ds"] = ds
    _state["add"] = ds.transaction(name="add")(_add)
    await asyncio.to_thread(DBOS.launch)


def main() -> None:
    import uvloop
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True, help="the application database (counters table)")
    parser.add_argument("--system-database-url", required=True, help="DBOS's system database")
    parser.add_argument("--pool-size", type=int, default=32)
    args = parser.parse_args()
    _state.update(url=args.database_url, pool=args.pool_size)
    DBOS(config={"name": "endure-compare", "system_database_url": args.system_database_url,
                 "sys_db_pool_size": args.pool_size, "log_level": "WARNING"})
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.keep_alive_timeout = 3600
    # hypercorn closes a connection after 1000 requests by default; the server then sees a broken
    # pipe mid-invocation and retries it after a backoff (stalls of seconds). Restate's SDK docs set
    # the same three limits to the maximum.
    config.keep_alive_max_requests = 2**31 - 1
    config.loglevel = "WARNING"
    uvloop.install()
    asyncio.run(serve(app, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
