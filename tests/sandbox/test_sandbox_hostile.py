"""Hostile guests against real wasmtime in real pool processes: each ends with the right typed
outcome, within its limits, and the pool serves the next run."""

from __future__ import annotations

import os
import time

import pytest
import wasmtime

from endure.sandbox import ErrorKind, LimitKind, Limits, Sandbox, SandboxError, SandboxResult

pytestmark = pytest.mark.asyncio(loop_scope="session")

MiB = 1 << 20


async def assert_healthy(sb: Sandbox) -> None:
    """The pool still runs ordinary code on every process."""
    for _ in range(sb.pool.size):
        res = await sb.run_python("print(6 * 7)")
        assert res.ok, res
        assert res.stdout == "42\n"


async def run_wat(sb: Sandbox, wat: str, limits: Limits | None = None) -> SandboxResult:
    """Compiles the WebAssembly text and runs the module."""
    return await sb.run_wasm(wasmtime.wat2wasm(wat), limits=limits)


async def test_infinite_loop_fuel(sandbox: Sandbox) -> None:
    res = await sandbox.run_python("while True: pass", limits=Limits(fuel=50_000_000))
    assert res.limit_hit is LimitKind.FUEL
    assert res.exit_code is None
    assert res.fuel_used == 50_000_000
    assert res.wall_ms < 5_000
    await assert_healthy(sandbox)


async def test_infinite_loop_wall_time_with_high_fuel(sandbox: Sandbox) -> None:
    t0 = time.monotonic()
    res = await sandbox.run_python("while True: pass", limits=Limits(fuel=10**13, wall_time_ms=300))
    assert res.limit_hit is LimitKind.WALL_TIME
    assert 250 <= res.wall_ms < 2_000
    assert time.monotonic() - t0 < 3
    await assert_healthy(sandbox)


async def test_js_infinite_loop(sandbox: Sandbox) -> None:
    res = await sandbox.run_javascript("for(;;){}", limits=Limits(fuel=30_000_000))
    assert res.limit_hit is LimitKind.FUEL
    res = await sandbox.run_javascript("for(;;){}", limits=Limits(fuel=10**13, wall_time_ms=200))
    assert res.limit_hit is LimitKind.WALL_TIME


async def test_blocked_in_host_call_hits_wall_time(sandbox: Sandbox) -> None:
    """time.sleep blocks in poll_oneoff where epochs cannot interrupt: the pool kills the process."""
    replaced = sandbox.pool.replaced
    t0 = time.monotonic()
    res = await sandbox.run_python("import time; time.sleep(60)", limits=Limits(wall_time_ms=200))
    assert res.limit_hit is LimitKind.WALL_TIME
    assert time.monotonic() - t0 < 5
    assert sandbox.pool.replaced == replaced + 1
    await assert_healthy(sandbox)


async def test_memory_bomb(sandbox: Sandbox) -> None:
    lim = Limits(memory_bytes=64 * MiB)
    res = await sandbox.run_python("x = []\nwhile True: x.append(bytearray(10**6))", limits=lim)
    assert res.limit_hit is LimitKind.MEMORY
    assert res.peak_memory_bytes <= 64 * MiB
    res = await sandbox.run_python("x = bytearray(10**9)", limits=lim)
    assert res.limit_hit is LimitKind.MEMORY
    res = await sandbox.run_javascript("let a=[]; for(;;) a.push(new Array(100000).fill(1))", limits=lim)
    assert res.limit_hit is LimitKind.MEMORY
    assert res.peak_memory_bytes <= 64 * MiB
    await assert_healthy(sandbox)


async def test_recursion_bomb(sandbox: Sandbox) -> None:
    res = await sandbox.run_python("def f(n): return f(n + 1)\nf(0)")
    assert res.exit_code == 1 and "RecursionError" in res.stderr
    # With the interpreter's guard lifted the guest hits a hard limit instead of the host.
    res = await sandbox.run_python(
        "import sys\nsys.setrecursionlimit(10**7)\ndef f(n): return f(n + 1)\nf(0)",
        limits=Limits(fuel=300_000_000, memory_bytes=128 * MiB),
    )
    assert res.limit_hit in (LimitKind.FUEL, LimitKind.MEMORY) or res.error_kind is ErrorKind.STACK_OVERFLOW
    res = await sandbox.run_javascript("function f(){ return f() + 1 }; f()")
    assert res.error_kind is ErrorKind.STACK_OVERFLOW or (res.exit_code == 1 and "RangeError" in res.stderr)
    await assert_healthy(sandbox)


async def test_output_flood(sandbox: Sandbox) -> None:
    lim = Limits(stdout_bytes=10_000)
    res = await sandbox.run_python("while True: print('x' * 1000)", limits=lim)
    assert res.limit_hit is LimitKind.OUTPUT
    assert res.stdout_truncated and len(res.stdout) == 10_000
    res = await sandbox.run_javascript("for(;;) console.log('y'.repeat(1000))", limits=lim)
    assert res.limit_hit is LimitKind.OUTPUT
    assert res.stdout_truncated and len(res.stdout) == 10_000
    res = await sandbox.run_python(
        "import sys\nwhile True: sys.stderr.write('e' * 999)", limits=Limits(stderr_bytes=5000)
    )
    assert res.limit_hit is LimitKind.OUTPUT and res.stderr_truncated and len(res.stderr) == 5000
    await assert_healthy(sandbox)


async def test_file_flood(sandbox: Sandbox) -> None:
    res = await sandbox.run_python("for i in range(100000): open(f'f{i}', 'w').write('x')")
    assert res.limit_hit is LimitKind.FILES
    assert res.files_truncated and len(res.files) <= Limits().max_files
    res = await sandbox.run_python(
        "f = open('big', 'wb')\nwhile True: f.write(b'x' * 10**6)", limits=Limits(scratch_bytes=8 * MiB)
    )
    assert res.limit_hit is LimitKind.FILES
    assert "big" not in res.files  # beyond max_files_bytes: not returned
    # Within the run quota but beyond the returned-files caps: a flag, not an abort.
    res = await sandbox.run_python(
        "for i in range(5): open(f'out{i}.txt', 'w').write('z' * 10)", limits=Limits(max_files=3)
    )
    assert res.exit_code == 0 and res.files_truncated and res.limit_hit is LimitKind.FILES
    assert sorted(res.files) == ["out0.txt", "out1.txt", "out2.txt"]
    await assert_healthy(sandbox)


@pytest.mark.parametrize(
    "code",
    [
        "print(open('/etc/passwd').read())",
        "print(open('../../../../etc/passwd').read())",
        "import os; print(os.listdir('/..'), open('/../etc/passwd').read())",
        "import os\nos.symlink('/etc/passwd', 'l')\nprint(open('l').read())",
        "import os\nos.symlink('../../../../../etc/passwd', 'l')\nprint(open('l').read())",
    ],
)
async def test_host_files_unreachable(sandbox: Sandbox, code: str) -> None:
    res = await sandbox.run_python(code)
    assert res.exit_code == 1, res
    assert "root:" not in res.stdout
    assert ("Error" in res.stderr) or ("denied" in res.stderr)
    for data in res.files.values():
        assert b"root:" not in data


async def test_symlink_left_in_scratch_is_not_followed_by_host(sandbox: Sandbox) -> None:
    code = "import os\ntry:\n    os.symlink('/etc/passwd', 'p')\nexcept OSError:\n    pass\nopen('ok.txt','w').write('ok')"
    res = await sandbox.run_python(code)
    assert res.files == {"ok.txt": b"ok"}


async def test_js_host_files_unreachable(sandbox: Sandbox) -> None:
    res = await sandbox.run_javascript(
        "console.log(std.loadFile('/etc/passwd'), std.loadFile('../../etc/passwd'), os.readdir('/..')[0])"
    )
    assert res.exit_code == 0
    assert "root:" not in res.stdout and res.stdout.startswith("null null")


async def test_sockets_and_processes_refused(sandbox: Sandbox) -> None:
    res = await sandbox.run_python("import socket\ns = socket.socket()\ns.connect(('1.1.1.1', 80))")
    # CPython 3.12 (WASI preview 1) says OSError; the 3.14 component (WASI 0.2, no network granted)
    # refuses with PermissionError, a subclass of OSError.
    assert res.exit_code == 1 and ("OSError" in res.stderr or "PermissionError" in res.stderr)
    res = await sandbox.run_python("import subprocess\nsubprocess.run(['ls'])")
    assert res.exit_code == 1 and "OSError" in res.stderr
    res = await sandbox.run_python("import os\nos.system('ls')")
    assert res.exit_code == 1 and ("AttributeError" in res.stderr or "OSError" in res.stderr)
    res = await sandbox.run_javascript("os.exec(['ls'])")
    assert res.exit_code == 1


async def test_env_allow_list(sandbox: Sandbox) -> None:
    os.environ["ENDURE_TEST_SECRET"] = "hunter2"  # the pool processes may inherit it; guests must not
    res = await sandbox.run_python("import os; print(sorted(os.environ.items()))", env={"GREETING": "hi"})
    assert res.stdout == "[('GREETING', 'hi')]\n"
    res = await sandbox.run_python("import os; print(dict(os.environ))")
    assert res.stdout == "{}\n"
    res = await sandbox.run_javascript(
        "console.log(JSON.stringify(std.getenviron()))", env={"GREETING": "yo"}
    )
    assert res.stdout == '{"GREETING":"yo"}\n'
    with pytest.raises(SandboxError, match="allow-list"):
        await sandbox.run_python("print(1)", env={"PATH": "/bin"})


HELLO_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello wasm\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 11))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 7))))
"""


async def test_raw_wasm_runs(sandbox: Sandbox) -> None:
    res = await run_wat(sandbox, HELLO_WAT)
    assert res.exit_code == 7 and res.stdout == "hello wasm\n"
    assert res.fuel_used > 0


async def test_malformed_and_truncated_wasm(sandbox: Sandbox) -> None:
    res = await sandbox.run_wasm(b"\x00asm\x01\x00\x00\x00garbage")
    assert res.error_kind is ErrorKind.INVALID_MODULE
    good = bytes(wasmtime.wat2wasm(HELLO_WAT))
    res = await sandbox.run_wasm(good[: len(good) // 2])
    assert res.error_kind is ErrorKind.INVALID_MODULE
    res = await sandbox.run_wasm(b"not wasm at all")
    assert res.error_kind is ErrorKind.INVALID_MODULE
    await assert_healthy(sandbox)


async def test_missing_imports(sandbox: Sandbox) -> None:
    wat = '(module (import "env" "launch_missiles" (func)) (func (export "_start") (call 0)))'
    res = await run_wat(sandbox, wat)
    assert res.error_kind is ErrorKind.LINK_ERROR
    wat = '(module (import "wasi_snapshot_preview1" "no_such_call" (func)) (func (export "_start")))'
    res = await run_wat(sandbox, wat)
    assert res.error_kind is ErrorKind.LINK_ERROR
    res = await run_wat(sandbox, '(module (func (export "main")))')
    assert res.error_kind is ErrorKind.LINK_ERROR and "_start" in (res.error or "")


async def test_trapping_guest(sandbox: Sandbox) -> None:
    res = await run_wat(sandbox, '(module (func (export "_start") unreachable))')
    assert res.error_kind is ErrorKind.TRAP and res.exit_code is None
    wat = '(module (memory 1) (func (export "_start") (drop (i32.load (i32.const 999999)))))'
    res = await run_wat(sandbox, wat)
    assert res.error_kind is ErrorKind.TRAP
    res = await run_wat(sandbox, '(module (func $f (export "_start") (call $f)))')
    assert res.error_kind is ErrorKind.STACK_OVERFLOW
    wat = '(module (func (export "_start") (loop (br 0))))'
    res = await run_wat(sandbox, wat, limits=Limits(fuel=1_000_000))
    assert res.limit_hit is LimitKind.FUEL and res.fuel_used == 1_000_000
    wat = '(module (memory 2000) (func (export "_start")))'
    res = await run_wat(sandbox, wat, limits=Limits(memory_bytes=16 * MiB))
    assert res.limit_hit is LimitKind.MEMORY
    await assert_healthy(sandbox)


async def test_pool_process_crash_is_replaced(sandbox: Sandbox) -> None:
    replaced = sandbox.pool.replaced
    await sandbox.pool.crash_one_for_tests()
    assert sandbox.pool.replaced == replaced + 1
    await assert_healthy(sandbox)


async def test_pool_processes_killed_while_idle_cost_the_next_runs_nothing(sandbox: Sandbox) -> None:
    """A pool process that dies between runs (OOM killer, kill -9) is skipped and replaced: the
    next runs succeed instead of failing on its closed pipe."""
    import signal

    victims = [w for w in sandbox.pool._all if w.alive()]
    for w in victims:
        os.kill(w.proc.pid, signal.SIGKILL)
    for w in victims:
        await w.proc.wait()  # asyncio notices the exits and closes the pipes
    for _ in range(sandbox.pool.size + 1):
        res = await sandbox.run_python("print(6 * 7)")
        assert res.ok, res
    await assert_healthy(sandbox)
