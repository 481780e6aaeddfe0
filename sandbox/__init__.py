"""endure.sandbox: run untrusted code (Python, JavaScript, any WASI module) in Wasmtime with hard limits.

async with Sandbox() as sb:
    res = await sb.run_python("print(1)")
"""

from endure.sandbox.limits import ErrorKind, LimitKind, Limits
from endure.sandbox.network import HttpExchange, NetErrorKind, NetworkPolicy
from endure.sandbox.packages import NotPurePythonError, PackageCache, PackageError
from endure.sandbox.pool import SandboxError
from endure.sandbox.result import SandboxResult
from endure.sandbox.sandbox import Sandbox
from endure.sandbox.tools import Tool, ToolError, ToolRegistry

__all__ = [
    "ErrorKind",
    "HttpExchange",
    "LimitKind",
    "Limits",
    "NetErrorKind",
    "NetworkPolicy",
    "NotPurePythonError",
    "PackageCache",
    "PackageError",
    "Sandbox",
    "SandboxError",
    "SandboxResult",
    "Tool",
    "ToolError",
    "ToolRegistry",
]
