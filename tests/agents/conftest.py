"""Agent fixtures: the real agents installed from npm (once per machine), and the gateway fixtures they talk to
(the proxy on loopback, pointed at the fake providers; a user with keys for every provider on the pro plan)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agents.npm import installed
from tests.gateway.conftest import account, fake, fakes, gateway_env, gw

__all__ = ["account", "claude_code", "codex", "fake", "fakes", "gateway_env", "gw"]

CLAUDE_CODE = ("@anthropic-ai/claude-code", "2.1.332", "bin/claude.exe")  # pinned: what these tests prove


@pytest.fixture(scope="session")
def claude_code() -> Path:
    """The ``claude`` executable of the pinned Claude Code (its native linux binary, no Node needed to run)."""
    return installed(*CLAUDE_CODE)


CODEX = ("@openai/codex", "0.171.0", "bin/codex.js")  # pinned; the Node launcher starts its native linux binary


@pytest.fixture(scope="session")
def codex() -> Path:
    """The ``codex`` launcher of the pinned Codex CLI."""
    return installed(*CODEX)
