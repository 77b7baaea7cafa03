"""Every provider's fake on one port, and a small runner for tests, benchmarks and ``python -m tests.fakes``.

``make_all_app(state)`` mounts the fakes under path prefixes so one server is every provider's base URL, one
fake per provider the registry lists (``webrana_proxy.providers.registry.SPECS``; a provider without a fake
fails here). ``FakeServer.env()`` gives each spec's base-URL setting, e.g.:

- openai:    ``OPENAI_BASE_URL=http://H:P/openai/v1``  (POST chat/completions, POST embeddings, GET models)
- qwen:      ``QWEN_BASE_URL=http://H:P/qwen/compatible-mode/v1``  (the same three)
- anthropic: ``ANTHROPIC_BASE_URL=http://H:P/anthropic``  (POST /v1/messages, GET /v1/models)
- google:    ``GEMINI_BASE_URL=http://H:P/gemini``  (POST /v1beta/models/{model}:{action}, GET models);
  requests to it are recorded with provider ``"gemini"``.
- deepseek, openrouter, mistral, groq, xai: ``<ID>_BASE_URL`` (see ``compat_providers``).

Run servers with ``handler_cancellation=True`` (``FakeServer`` does) so a client that leaves is noticed at
once, even while a fake is stalling.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from tests.fakes.anthropic import make_anthropic_app
from tests.fakes.compat_providers import FLAVORS, make_compat_app
from tests.fakes.gemini import make_gemini_app
from tests.fakes.openai_like import make_openai_app, make_qwen_app
from tests.fakes.scenario import FakeState
from webrana_proxy.providers.registry import SPECS

FAKE_NAMES = {"google": "gemini"}  # provider id -> the name its fake records requests under, when they differ


def fake_name(provider_id: str) -> str:
    return FAKE_NAMES.get(provider_id, provider_id)


AppFactory = Callable[[FakeState], web.Application]
# fake name -> (app factory, the API's path under the fake's prefix)
FAKES: dict[str, tuple[AppFactory, str]] = {
    "openai": (make_openai_app, "/v1"),
    "qwen": (make_qwen_app, "/compatible-mode/v1"),
    "anthropic": (make_anthropic_app, ""),
    "gemini": (make_gemini_app, ""),
    **{name: ((lambda state, name=name: make_compat_app(state, name)), flavor.prefix)
       for name, flavor in FLAVORS.items()},
}
PREFIXES = {fake_name(s.id): "/" + fake_name(s.id) for s in SPECS}
BASE_PATHS = {name: prefix + FAKES[name][1] for name, prefix in PREFIXES.items()}
ENV_NAMES = {fake_name(s.id): s.base_url_env for s in SPECS}


def make_all_app(state: FakeState | None = None) -> web.Application:
    """One app serving every fake under ``PREFIXES``; they share ``state`` (requests say which fake)."""
    shared = state if state is not None else FakeState()
    app = web.Application()
    for name, prefix in PREFIXES.items():
        app.add_subapp(prefix, FAKES[name][0](shared))
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
        """The provider's base URL on the combined app, by fake name (``openai``, ``gemini``, ``mistral``...)."""
        return self.url + BASE_PATHS[provider]

    def env(self) -> dict[str, str]:
        """The gateway settings that point every provider at this server."""
        return {ENV_NAMES[p]: self.base_url(p) for p in BASE_PATHS}
