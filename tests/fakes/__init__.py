"""Fake upstream providers (OpenAI, Qwen, Anthropic, Gemini) speaking the real wire formats, on loopback.

Quick use::

    async with FakeServer() as fake:            # all four under path prefixes, port chosen by the OS
        fake.state.script(scenario.rate_limited("2"), scenario.text("hello there"))
        settings_env = fake.env()               # OPENAI_BASE_URL=http://127.0.0.1:P/openai/v1, ...
        ...
        assert fake.state.last.body["model"] == "gpt-4o-mini"

Modules: ``scenario`` (FakeState, Behaviour and its constructors), ``openai_like`` (OpenAI and Qwen),
``anthropic``, ``gemini``, ``server`` (make_all_app, FakeServer), ``playback`` (timing and faults).
"""

from tests.fakes.anthropic import make_anthropic_app
from tests.fakes.gemini import make_gemini_app
from tests.fakes.openai_like import make_openai_app, make_qwen_app
from tests.fakes.scenario import Behaviour, FakeState, RecordedRequest, ToolCall, Usage
from tests.fakes.server import BASE_PATHS, ENV_NAMES, FakeServer, make_all_app

__all__ = [
    "BASE_PATHS",
    "ENV_NAMES",
    "Behaviour",
    "FakeServer",
    "FakeState",
    "RecordedRequest",
    "ToolCall",
    "Usage",
    "make_all_app",
    "make_anthropic_app",
    "make_gemini_app",
    "make_openai_app",
    "make_qwen_app",
]
