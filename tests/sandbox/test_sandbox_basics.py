"""Ordinary runs: output, files in and out, stdin, exit codes, metering, JSON round-trip, concurrency."""

from __future__ import annotations

import asyncio

import pytest

from endure.sandbox import LimitKind, Limits, Sandbox, SandboxResult

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_python_hello(sandbox: Sandbox) -> None:
    res = await sandbox.run_python("import sys\nprint('hi', sys.version_info[:2])")
    # CPython 3.14 in the pre-initialized component; 3.12 on the core fallback path.
    version = (3, 14) if sandbox.pool.python_info.get("engine") == "component" else (3, 12)
    assert res.ok and res.stdout == f"hi {version}\n" and res.stderr == ""
    assert res.fuel_used > 0 and res.wall_ms > 0 and res.peak_memory_bytes > 0
    assert res.usage() == {
        "sandbox.fuel": float(res.fuel_used),
        "sandbox.wall_ms": res.wall_ms,
        "sandbox.peak_memory_bytes": float(res.peak_memory_bytes),
    }


async def test_python_stdlib_available(sandbox: Sandbox) -> None:
    res = await sandbox.run_python(
        "import json, re, decimal, datetime, collections, hashlib\n"
        "print(json.dumps({'d': str(decimal.Decimal('1.1') * 2)}), hashlib.sha256(b'').hexdigest()[:8])"
    )
    assert res.ok, res.stderr
    assert res.stdout == '{"d": "2.2"} e3b0c442\n'


async def test_python_exit_codes_and_errors(sandbox: Sandbox) -> None:
    res = await sandbox.run_python("raise SystemExit(3)")
    assert res.exit_code == 3 and res.limit_hit is None and res.error is None
    res = await sandbox.run_python("def f():\n    1/0\nf()")
    assert res.exit_code == 1
    assert (
        'File "main.py", line 2, in f' in res.stderr and "ZeroDivisionError: division by zero" in res.stderr
    )
    res = await sandbox.run_python("x = (")
    assert res.exit_code == 1 and "SyntaxError" in res.stderr


async def test_files_stdin_args(sandbox: Sandbox) -> None:
    code = (
        "import sys, os\n"
        "data = open('in/data.txt').read()\n"
        "os.makedirs('out', exist_ok=True)\n"
        "open('out/result.txt', 'w').write(data.upper() + sys.stdin.read())\n"
        "print(sys.argv[1:], os.getcwd())\n"
    )
    res = await sandbox.run_python(
        code, files={"in/data.txt": b"abc", "keep.bin": b"\x00\x01"}, stdin=b"+stdin", args=["x", "y"]
    )
    assert res.ok, res.stderr
    assert res.stdout == "['x', 'y'] /\n"
    assert res.files == {"out/result.txt": b"ABC+stdin"}  # unchanged inputs are not returned


async def test_bad_input_file_names(sandbox: Sandbox) -> None:
    res = await sandbox.run_python("print(1)", files={"../escape": b"x"})
    assert res.error and "bad file name" in res.error
    await sandbox.run_python("print(1)")


async def test_javascript(sandbox: Sandbox) -> None:
    res = await sandbox.run_javascript("console.log([1,2,3].map(x => x * 2).join(','))")
    assert res.ok and res.stdout == "2,4,6\n"
    code = (
        "const input = JSON.parse(std.in.readAsString());\n"
        "Promise.resolve().then(() => console.log('micro'));\n"
        "await new Promise(r => os.setTimeout(r, 5));\n"
        "const f = std.open('out.json', 'w'); f.puts(JSON.stringify({n: input.n + 1})); f.close();\n"
        "console.log(std.loadFile('in.txt'));\n"
    )
    res = await sandbox.run_javascript(code, files={"in.txt": b"from file"}, stdin=b'{"n": 41}')
    assert res.ok, res.stderr
    assert res.stdout == "micro\nfrom file\n"
    assert res.files == {"out.json": b'{"n":42}'}
    res = await sandbox.run_javascript("throw new TypeError('nope')")
    assert res.exit_code == 1 and "TypeError: nope" in res.stderr
    res = await sandbox.run_javascript("std.out.puts('bye'); std.exit(5)")
    assert res.exit_code == 5 and res.stdout == "bye"


async def test_result_json_round_trip(sandbox: Sandbox) -> None:
    res = await sandbox.run_python("open('b.bin','wb').write(bytes(range(256)))\nprint('é')")
    assert res.files["b.bin"] == bytes(range(256))
    again = SandboxResult.model_validate_json(res.model_dump_json())
    assert again == res
    trunc = SandboxResult(limit_hit=LimitKind.OUTPUT, stdout_truncated=True)
    assert SandboxResult.model_validate_json(trunc.model_dump_json()).limit_hit is LimitKind.OUTPUT


async def test_concurrent_runs_are_isolated(sandbox: Sandbox) -> None:
    code = "import os\nopen('mine', 'w').write('{n}')\nprint(sorted(os.listdir('/')), open('mine').read())"
    results = await asyncio.gather(*(sandbox.run_python(code.format(n=i)) for i in range(6)))
    for i, res in enumerate(results):
        assert res.ok, res.stderr
        assert res.stdout == f"['mine'] {i}\n"
        assert res.files == {"mine": str(i).encode()}


async def test_custom_memory_limit_uses_fresh_interpreter(sandbox: Sandbox) -> None:
    res = await sandbox.run_python("print('small')", limits=Limits(memory_bytes=48 << 20))
    assert res.ok and res.stdout == "small\n" and res.peak_memory_bytes <= 48 << 20
    res = await sandbox.run_python("print('tiny')", limits=Limits(memory_bytes=1 << 20))
    assert res.limit_hit is LimitKind.MEMORY


async def test_event_loop_not_blocked(sandbox: Sandbox) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    t = asyncio.get_running_loop().create_task(ticker())
    res = await sandbox.run_python("while True: pass", limits=Limits(fuel=10**13, wall_time_ms=300))
    t.cancel()
    assert res.limit_hit is LimitKind.WALL_TIME
    assert ticks >= 10
