"""The real Codex CLI (``codex exec``, from npm) against Webrana, with an OpenAI, a Claude and a Gemini model.

Codex is pointed at Webrana the way a developer does it: a ``model_providers.webrana`` entry in
``$CODEX_HOME/config.toml`` (``base_url`` = Webrana's ``/v1``, ``wire_api = "responses"``, ``env_key`` naming the
variable that holds a ``wbr_`` key). It streams ``POST /v1/responses`` with ``store: false``,
``include: ["reasoning.encrypted_content"]``, ``reasoning``, ``prompt_cache_key``, ``client_metadata``,
``Accept-Encoding: zstd,gzip`` and about a dozen tools (flat functions such as ``exec_command``, a ``namespace``
of agent tools, ``web_search``). Each case scripts the fake provider to call Codex's ``exec_command`` tool on the
first turn (``cat`` of a file in the working folder) and to answer with text on the second, so Codex runs a
shell command and sends its ``function_call_output`` back through the gateway. It must exit 0 with the fake's
answer as its last message, the file's contents must reach the provider, and every call must be in the usage
table. Codex 0.171 sends request bodies uncompressed to a provider of its own configuration (it compresses
only with ChatGPT sign-in to OpenAI itself); the gateway decodes gzip and zstd bodies anyway (test_responses_*).

Only loopback: Codex's analytics and update checks are off in its config, any other host it tried would reach
a refusing proxy on loopback (asserted untouched), and every request it made is accounted for (the fakes' count
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

from tests.agents.test_claude_code import TOOL_RESULTS, EgressTrap
from tests.fakes import scenario
from tests.fakes.scenario import FakeState
from tests.gateway.conftest import Account, wait_rows

Client = TestClient[web.Request, web.Application]
RUN_TIMEOUT = 120  # seconds for one `codex exec` run (a few seconds normally)
KEY_VARIABLE = "WEBRANA_API_KEY"
# (model Codex is told to use, the provider the gateway routes it to, the fake's name)
CASES = [
    pytest.param("gpt-5-mini", "openai", "openai", id="openai-native"),
    pytest.param("gpt-5.5", "openai", "openai", id="openai-native-known-model"),
    pytest.param("claude-sonnet-4-5", "anthropic", "anthropic", id="claude-translated"),
    pytest.param("gemini-2.5-flash", "google", "gemini", id="gemini-translated"),
]


def config_toml(base_url: str, model: str) -> str:
    """What a developer puts in ``~/.codex/config.toml`` to use Webrana (plus no analytics, no update check)."""
    return (f'model = "{model}"\n'
            'model_provider = "webrana"\n'
            "check_for_update_on_startup = false\n"
            "\n"
            "[analytics]\n"
            "enabled = false\n"
            "\n"
            "[features]\n"
            "plugins = false\n"  # else it fetches OpenAI's plugin marketplace from GitHub at start
            "\n"
            "[model_providers.webrana]\n"
            'name = "Webrana"\n'
            f'base_url = "{base_url}/v1"\n'
            f'env_key = "{KEY_VARIABLE}"\n'
            'wire_api = "responses"\n')


def agent_env(home: Path, key: str, egress: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(home / ".codex"),
        KEY_VARIABLE: key,
        "HTTPS_PROXY": egress,
        "HTTP_PROXY": egress,
        "NO_PROXY": "127.0.0.1,localhost",
    }


async def run_codex(exe: Path, env: dict[str, str], cwd: Path, prompt: str) -> tuple[int, list[Any], str]:
    proc = await asyncio.create_subprocess_exec(
        str(exe), "exec", "--json", "--skip-git-repo-check", prompt,
        cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    events: list[Any] = []
    for line in out.splitlines():
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            events.append(line.decode(errors="replace"))
    assert proc.returncode is not None
    return proc.returncode, events, err.decode(errors="replace")


def _responses_tool_results(body: Any) -> list[str]:
    items = body.get("input", []) if isinstance(body, dict) else []
    return [str(i.get("output")) for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]


RESULTS = {**TOOL_RESULTS, "openai": lambda body: [*_responses_tool_results(body),
                                                   *TOOL_RESULTS["openai"](body)]}


def _messages(events: list[Any]) -> list[str]:
    return [e["item"]["text"] for e in events if isinstance(e, dict) and e.get("type") == "item.completed"
            and e["item"].get("type") == "agent_message"]


@pytest.mark.parametrize(("model", "provider", "fake_name"), CASES)
async def test_codex_runs_a_command_and_answers(
        codex: Path, gw: Client, account: Account, fake: FakeState, migrated: str, tmp_path: Path,
        model: str, provider: str, fake_name: str) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    (home / ".codex").mkdir(parents=True)
    secret = f"kata sandi {secrets.token_hex(4)}"
    (work / "note.txt").write_text(f"The note says: {secret}\n")
    answer = f"Catatan itu berkata {secret}. Selesai dari {fake_name}."
    fake.script(scenario.tool_calls(("exec_command", {"cmd": "cat note.txt"}), provider=fake_name),
                scenario.text(answer, provider=fake_name))
    base_url = str(gw.make_url("")).rstrip("/")
    (home / ".codex" / "config.toml").write_text(config_toml(base_url, model))

    async with EgressTrap() as egress:
        code, events, stderr = await run_codex(codex, agent_env(home, account.proxy_key, egress.url), work,
                                               "What does note.txt say?")

    assert code == 0, f"codex exited {code}: {events!r}\n{stderr}"
    assert egress.seen == []  # it talked to nothing but Webrana
    assert _messages(events)[-1:] == [answer], events
    assert any(isinstance(e, dict) and e.get("type") == "turn.completed" for e in events), events
    assert fake.pending == 0  # both scripted turns were used: the command and the answer
    seen = fake.requests
    assert seen and {r.provider for r in seen} == {fake_name}, [(r.provider, r.path) for r in seen]
    assert all(r.outcome == "ok" for r in seen), [(r.path, r.outcome) for r in seen]
    # The command ran in Codex and its output came back through the gateway to the provider.
    assert any(secret in text for r in seen for text in RESULTS[fake_name](r.body)), \
        [RESULTS[fake_name](r.body) for r in seen]
    # Every call Codex made is one usage row, and every one reached the provider.
    rows = await wait_rows(migrated, len(seen))
    assert len(rows) == len(seen)
    assert {str(r["user_id"]) for r in rows} == {account.user_id}
    assert [(r["endpoint"], r["provider"], r["status"], r["stream"]) for r in rows] == \
        [("responses", provider, 200, True)] * len(rows)
