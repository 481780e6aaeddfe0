"""A chat-completions client for the examples, and an offline scripted stand-in.

With ENDURE_LLM_URL set (an OpenAI-compatible base URL, e.g. https://host/v1) and ENDURE_LLM_KEY,
`default_model()` speaks the real chat API. Without it, it returns `ScriptedModel`: NOT a language
model, just a fixed script of replies so the examples run offline and deterministically.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Reply:
    text: str
    input_tokens: int
    output_tokens: int
    model: str


RESEARCH_ROLE = "You are a research assistant."
"""The system prompt the research example starts with (the scripted model keys its replies on it)."""


class ChatModel(Protocol):
    name: str

    def complete(self, messages: list[dict[str, str]]) -> Reply: ...


class OpenAICompatibleModel:
    """POST {base}/chat/completions; blocking (ctx.run runs sync functions in a thread)."""

    def __init__(self, base_url: str, api_key: str, model: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.name = model

    def complete(self, messages: list[dict[str, str]]) -> Reply:
        body = json.dumps({"model": self.name, "messages": messages}).encode()
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"})
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - the configured URL
            data: dict[str, Any] = json.loads(response.read())
        usage = data.get("usage", {})
        return Reply(text=data["choices"][0]["message"]["content"], input_tokens=int(usage.get("prompt_tokens", 0)),
                     output_tokens=int(usage.get("completion_tokens", 0)), model=self.name)


class ScriptedModel:
    """An offline stand-in, plainly not an LLM: replies come from a fixed script, in turn order.

    For the coding agent it first writes a program with a bug, then, once it sees the error in
    the conversation, the fixed program, so the retry loop is exercised deterministically. For the
    research example (a system message starting with RESEARCH_ROLE) it echoes the question back as
    a labelled canned note, so the same input always gives the same "answer".
    """

    name = "scripted-model (offline stand-in, not an LLM)"

    FIRST = "```python\nnumbers = [3, 1, 2]\nprint(sorted(number))\n```"
    FIXED = "```python\nnumbers = [3, 1, 2]\nprint(sorted(numbers))\n```"

    def complete(self, messages: list[dict[str, str]]) -> Reply:
        tokens_in = sum(len(m["content"].split()) for m in messages)
        if messages and messages[0]["role"] == "system" and messages[0]["content"].startswith(RESEARCH_ROLE):
            asked = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            text = f"[scripted note, not an LLM] On {asked!r}: three sources agree; one disagrees."
            return Reply(text=text, input_tokens=tokens_in, output_tokens=len(text.split()), model=self.name)
        saw_error = any(m["role"] == "user" and "Traceback" in m["content"] for m in messages)
        text = self.FIXED if saw_error else self.FIRST
        return Reply(text=text, input_tokens=tokens_in, output_tokens=len(text.split()), model=self.name)


def default_model() -> ChatModel:
    url = os.environ.get("ENDURE_LLM_URL")
    if url:
        return OpenAICompatibleModel(url, os.environ.get("ENDURE_LLM_KEY", ""),
                                     os.environ.get("ENDURE_LLM_MODEL", "gpt-4o-mini"))
    return ScriptedModel()


def extract_code(text: str) -> str:
    """The first fenced code block of a reply (or the whole reply)."""
    if "```" in text:
        block = text.split("```", 2)[1]
        return block.removeprefix("python").lstrip("\n")
    return text
