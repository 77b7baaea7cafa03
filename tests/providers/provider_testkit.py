"""Helpers for the provider tests: fixtures on disk and reassembling OpenAI streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from webrana_proxy.sse import SSEParser

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def events_of(stream: bytes) -> list[str]:
    parser = SSEParser()
    return [e.data for e in parser.feed(stream) + parser.close()]


def chunks_of(stream: bytes) -> list[Any]:
    """Every ``data:`` payload of an OpenAI stream, parsed ([DONE] kept as the string)."""
    return [d if d == "[DONE]" else orjson.loads(d) for d in events_of(stream)]


@dataclass
class Reassembled:
    content: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    done: bool = False
    error: dict[str, Any] | None = None
    roles: list[str] = field(default_factory=list)


def reassemble(stream: bytes) -> Reassembled:
    """What the OpenAI SDK's stream accumulator would build from a chunk stream."""
    out = Reassembled()
    for chunk in chunks_of(stream):
        if chunk == "[DONE]":
            out.done = True
            continue
        if "error" in chunk:
            out.error = chunk["error"]
            continue
        if chunk.get("usage"):
            out.usage = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if delta.get("role"):
                out.roles.append(delta["role"])
            out.content += delta.get("content") or ""
            out.reasoning += delta.get("reasoning_content") or ""
            for call in delta.get("tool_calls") or []:
                while len(out.tool_calls) <= call["index"]:
                    out.tool_calls.append({"id": None, "name": "", "arguments": ""})
                slot = out.tool_calls[call["index"]]
                if call.get("id"):
                    slot["id"] = call["id"]
                fn = call.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                out.finish_reason = choice["finish_reason"]
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, duplicates allowed)."""
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces
