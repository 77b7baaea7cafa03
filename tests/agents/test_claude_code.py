"""The real Claude Code (``claude -p``, from npm) against Webrana, with a Claude, an OpenAI and a Gemini model.

Claude Code streams ``POST /v1/messages?beta=true`` with its betas, ~12 tool definitions (JSON Schema 2020-12),
``thinking``, ``context_management``, ``cache_control`` and ``metadata``. Each case scripts the fake provider to
call Claude Code's ``Read`` tool on the first turn and answer with text on the second, so the agent runs a tool
and sends its ``tool_result`` back through the gateway. It must exit 0 with the fake's answer as its result,
the file's contents must reach the provider, and every call must be in the usage table.

Only loopback: the agent is told to make no non-essential traffic, any other host it tried would reach a
refusing proxy on loopback (asserted untouched), and every request it made is accounted for (the fakes' count
equals the usage rows, all 200).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account, wait_rows

Client = TestClient[web.Request, web.Application]
RUN_TIMEOUT = 120  # seconds for one `claude -p` run (a few seconds normally)
# gpt-4o-mini has no reasoning and allows 16,384 output tokens: Claude Code still sends its thinking and
# max_tokens 32,000 (no workaround variables), and the gateway fits them to the model (capabilities.json).
# (model Claude Code is told to use, the provider the gateway routes it to, the fake's name, extra env)
CASES = [
    pytest.param("claude-sonnet-4-5", "anthropic", "anthropic", {}, id="claude-native"),
    pytest.param("gpt-5-mini", "openai", "openai", {}, id="openai-translated"),
    pytest.param("gpt-4o-mini", "openai", "openai", {}, id="openai-no-reasoning"),
    pytest.param("gemini-2.5-flash", "google", "gemini", {}, id="gemini-translated"),
]


class EgressTrap:
    """An HTTP proxy on loopback that refuses everything and remembers what was asked: the agent gets it as
    HTTPS_PROXY/HTTP_PROXY (with NO_PROXY for loopback), so any call to another host lands here, not outside.
    Without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, Claude Code 2.1.332 tries api.anthropic.com 5 times."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.seen.append(await reader.readline())
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> EgressTrap:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def agent_env(home: Path, base_url: str, key: str, model: str, egress: str) -> dict[str, str]:
    """What a developer sets to point Claude Code at Webrana, plus a throwaway HOME and no side traffic."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,  # its background calls use the same provider
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "HTTPS_PROXY": egress,
        "HTTP_PROXY": egress,
        "NO_PROXY": "127.0.0.1,localhost",
    }


async def run_claude(exe: Path, env: dict[str, str], cwd: Path, prompt: str, model: str) -> tuple[int, Any, str]:
    proc = await asyncio.create_subprocess_exec(
        str(exe), "-p", prompt, "--output-format", "json", "--model", model,
        cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    try:
        result = orjson.loads(out)
    except orjson.JSONDecodeError:
        result = out.decode(errors="replace")
    assert proc.returncode is not None
    return proc.returncode, result, err.decode(errors="replace")


def _tool_result_texts(body: Any) -> list[str]:
    out: list[str] = []
    for message in body.get("messages", []) if isinstance(body, dict) else []:
        for block in message.get("content", []) if isinstance(message.get("content"), list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                content = block.get("content")
                out.append(content if isinstance(content, str) else orjson.dumps(content).decode())
    return out


def _gemini_tool_results(body: Any) -> list[str]:
    out: list[str] = []
    for content in body.get("contents", []) if isinstance(body, dict) else []:
        for part in content.get("parts", []):
            if "functionResponse" in part:
                out.append(orjson.dumps(part["functionResponse"]).decode())
    return out


def _openai_tool_results(body: Any) -> list[str]:
    return [str(m.get("content")) for m in body.get("messages", []) if m.get("role") == "tool"] \
        if isinstance(body, dict) else []


TOOL_RESULTS = {"anthropic": _tool_result_texts, "openai": _openai_tool_results, "gemini": _gemini_tool_results}


@pytest.mark.parametrize(("model", "provider", "fake_name", "extra_env"), CASES)
async def test_claude_code_reads_a_file_and_answers(
        claude_code: Path, gw: Client, account: Account, fake: FakeState, migrated: str, tmp_path: Path,
        model: str, provider: str, fake_name: str, extra_env: dict[str, str]) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    secret = f"kata sandi {secrets.token_hex(4)}"
    note = work / "note.txt"
    note.write_text(f"The note says: {secret}\n")
    answer = f"Catatan itu berkata {secret}. Selesai dari {fake_name}."
    fake.script(scenario.tool_calls(("Read", {"file_path": str(note)}), provider=fake_name),
                scenario.text(answer, provider=fake_name))

    base_url = str(gw.make_url("")).rstrip("/")
    async with EgressTrap() as egress:
        env = {**agent_env(home, base_url, account.proxy_key, model, egress.url), **extra_env}
        code, result, stderr = await run_claude(claude_code, env, work, "What does note.txt say?", model)

    assert code == 0, f"claude exited {code}: {result!r}\n{stderr}"
    assert egress.seen == []  # it talked to nothing but Webrana
    assert isinstance(result, dict) and result.get("is_error") is False, result
    assert result["result"] == answer
    assert fake.pending == 0  # both scripted turns were used: the tool call and the answer
    seen = fake.requests
    assert seen and {r.provider for r in seen} == {fake_name}, [(r.provider, r.path) for r in seen]
    assert all(r.outcome == "ok" for r in seen), [(r.path, r.outcome) for r in seen]
    # The tool ran in Claude Code and its result came back through the gateway to the provider.
    assert any(secret in text for r in seen for text in TOOL_RESULTS[fake_name](r.body)), \
        [TOOL_RESULTS[fake_name](r.body) for r in seen]
    # Every call the agent made is one usage row, and every one reached the provider.
    rows = await wait_rows(migrated, len(seen))
    assert len(rows) == len(seen)
    assert {str(r["user_id"]) for r in rows} == {account.user_id}
    assert {r["endpoint"] for r in rows} <= {"messages", "count_tokens"}
    assert [(r["provider"], r["status"]) for r in rows] == [(provider, 200)] * len(rows)
    assert all(r["stream"] for r in rows if r["endpoint"] == "messages")
