"""Tools: sandboxed programs with typed (pydantic) input and output, described for LLM function calling.

A tool's guest reads its input as JSON on stdin and writes its output as JSON on stdout. The
registry validates both sides, so a model's malformed arguments or a buggy tool fail with a clear
`ToolError` instead of flowing on as garbage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from endure.sandbox.limits import Limits
from endure.sandbox.network import NetworkPolicy
from endure.sandbox.pool import SandboxError
from endure.sandbox.result import SandboxResult
from endure.sandbox.sandbox import Sandbox


class ToolError(SandboxError):
    """A tool call failed: bad input, the guest failed, or its output did not validate."""

    def __init__(self, message: str, result: SandboxResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class Tool:
    """A Python (`python=`), JavaScript (`javascript=`) or WASI (`wasm=`) program with typed I/O."""

    def __init__(
        self,
        name: str,
        description: str,
        input_model: type[BaseModel],
        output_model: type[BaseModel],
        *,
        python: str | None = None,
        javascript: str | None = None,
        wasm: bytes | None = None,
        limits: Limits | None = None,
        requirements: Sequence[str] | None = None,
        network: NetworkPolicy | Mapping[str, Any] | None = None,
    ) -> None:
        if sum(x is not None for x in (python, javascript, wasm)) != 1:
            raise ValueError("a tool needs exactly one of python=, javascript= or wasm=")
        if (requirements or network is not None) and python is None:
            raise ValueError(f"tool {name!r}: requirements= and network= are for python= tools")
        if not name or not all(c.isalnum() or c in "_-" for c in name) or len(name) > 64:
            raise ValueError(
                f"tool name {name!r} must be 1-64 chars of [A-Za-z0-9_-] (function-calling rule)"
            )
        self.name = name
        self.description = description
        self.input_model = input_model
        self.output_model = output_model
        self.python = python
        self.javascript = javascript
        self.wasm = wasm
        self.limits = limits
        self.requirements = list(requirements or [])  # pure-Python packages the tool imports
        # What the tool may reach over HTTP (checked now, so a bad policy fails at registration).
        self.network = None if network is None else NetworkPolicy.model_validate(network)

    def json_schema(self) -> dict[str, Any]:
        """The OpenAI function-calling description of this tool."""
        params = self.input_model.model_json_schema()
        params.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }

    def parse_input(self, data: BaseModel | dict[str, Any] | str) -> BaseModel:
        try:
            if isinstance(data, self.input_model):
                return data
            if isinstance(data, BaseModel):
                data = data.model_dump()
            if isinstance(data, str):
                return self.input_model.model_validate_json(data)
            return self.input_model.model_validate(data)
        except ValidationError as e:
            raise ToolError(f"tool {self.name!r}: invalid input: {e}") from e

    async def call(self, sb: Sandbox, data: BaseModel | dict[str, Any] | str) -> BaseModel:
        """Run the tool once; returns the validated output model (or raises ToolError)."""
        out, _ = await self.call_with_result(sb, data)
        return out

    async def call_with_result(
        self, sb: Sandbox, data: BaseModel | dict[str, Any] | str
    ) -> tuple[BaseModel, SandboxResult]:
        inp = self.parse_input(data)
        stdin = inp.model_dump_json().encode()
        if self.python is not None:
            grants: dict[str, Any] = {}
            if self.requirements:
                grants["requirements"] = self.requirements
            if self.network is not None:
                grants["network"] = self.network
            res = await sb.run_python(self.python, limits=self.limits, stdin=stdin, **grants)
        elif self.javascript is not None:
            res = await sb.run_javascript(self.javascript, limits=self.limits, stdin=stdin)
        else:
            assert self.wasm is not None
            res = await sb.run_wasm(self.wasm, limits=self.limits, stdin=stdin)
        if not res.ok:
            why = res.error or (
                f"limit {res.limit_hit.value} hit" if res.limit_hit else f"exit code {res.exit_code}"
            )
            raise ToolError(f"tool {self.name!r} failed: {why}; stderr: {res.stderr[-1000:]}", res)
        try:
            out = self.output_model.model_validate_json(res.stdout.strip() or "null")
        except ValidationError as e:
            raise ToolError(f"tool {self.name!r}: invalid output: {e}", res) from e
        return out, res


class ToolRegistry:
    """Tools by name; `schemas()` is what an LLM's `tools=` parameter takes."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} already registered")
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise ToolError(f"unknown tool {name!r}; known: {sorted(self._tools)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tools.values())

    def schemas(self) -> list[dict[str, Any]]:
        return [t.json_schema() for t in self._tools.values()]

    async def call(self, sb: Sandbox, name: str, data: BaseModel | dict[str, Any] | str) -> BaseModel:
        """Validate input, run the tool in the sandbox, validate and return its output."""
        return await self.get(name).call(sb, data)

    @staticmethod
    def arguments(raw: str) -> dict[str, Any]:
        """Decode an LLM tool call's JSON `arguments` string, with a clear error."""
        try:
            val = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ToolError(f"tool arguments are not JSON: {e}") from e
        if not isinstance(val, dict):
            raise ToolError("tool arguments must be a JSON object")
        return val
