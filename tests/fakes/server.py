"""All four fakes on one port, and a small runner for tests, benchmarks and ``python -m tests.fakes``.

``make_all_app(state)`` mounts the fakes under path prefixes so one server is every provider's base URL:

- openai:    ``OPENAI_BASE_URL=http://H:P/openai/v1``  (POST chat/completions, POST embeddings, GET models)
- qwen:      ``QWEN_BASE_URL=http://H:P/qwen/compatible-mode/v1``  (the same three)
- anthropic: ``ANTHROPIC_BASE_URL=http://H:P/anthropic``  (POST /v1/messages, GET /v1/models)
- google:    ``GEMINI_BASE_URL=http://H:P/gemini``  (POST /v1beta/models/{model}:{action}, GET models);
  requests to it are recorded with provider ``"gemini"``.

Run servers with ``handler_cancellation=True`` (``FakeServer`` does) so a client that leaves is noticed at
once, even while a fake is stalling.
"""

from __future__ import annotations

from types import TracebackType

from aiohttp import web

from tests.fakes.anthropic import make_anthropic_app
from tests.fakes.gemini import make_gemini_app
from tests.fakes.openai_like import make_openai_app, make_qwen_app
from tests.fakes.scenario import FakeState

PREFIXES = {"openai": "/openai", "qwen": "/qwen", "anthropic": "/anthropic", "gemini": "/gemini"}
BASE_PATHS = {
    "openai": "/openai/v1",
    "qwen": "/qwen/compatible-mode/v1",
    "anthropic": "/anthropic",
    "gemini": "/gemini",
}
ENV_NAMES = {
    "openai": "OPENAI_BASE_URL",
    "qwen": "QWEN_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "gemini": "GEMINI_BASE_URL",
}


def make_all_app(state: FakeState | None = None) -> web.Application:
    """One app serving all four fakes under ``PREFIXES``; they share ``state`` (requests say which fake)."""
    shared = state if state is not None else FakeState()
    app = web.Application()
    app.add_subapp(PREFIXES["openai"], make_openai_app(shared))
    app.add_subapp(PREFIXES["qwen"], make_qwen_app(shared))
    app.add_subapp(PREFIXES["anthropic"], make_anthropic_app(shared))
    app.add_subapp(PREFIXES["gemini"], make_gemini_app(shared))
    return app


class FakeServer:
    """Serve an app on 127.0.0.1 (port 0 = any free port). ``async with FakeServer() as fake: ...``.

    With no app, serves ``make_all_app(state)``; ``base_url(provider)`` and ``env()`` then give the base URLs.
    """

    def __init__(
        self,
        app: web.Application | None = None,
        state: FakeState | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        reuse_port: bool = False,
    ) -> None:
        self.state = state if state is not None else FakeState()
        self.app = app if app is not None else make_all_app(self.state)
        self.host = host
        self.port = port
        self.reuse_port = reuse_port  # several processes on one port (``python -m tests.fakes --workers``)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(
            runner, self.host, self.port, reuse_address=True, reuse_port=self.reuse_port or None
        )
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, provider: str) -> str:
        """The provider's base URL on the combined app (``openai``, ``qwen``, ``anthropic``, ``gemini``)."""
        return self.url + BASE_PATHS[provider]

    def env(self) -> dict[str, str]:
        """The gateway settings that point every provider at this server."""
        return {ENV_NAMES[p]: self.base_url(p) for p in BASE_PATHS}
