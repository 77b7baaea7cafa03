"""One spec per provider, and everything else derived from it: no provider id outside providers/, settings, the
OpenAPI enum, the fakes and the prices all follow the registry's list."""

from __future__ import annotations

import base64
import os
import re
from datetime import date
from pathlib import Path

import pytest

from tests.fakes.server import ENV_NAMES, FAKES, PREFIXES, fake_name
from webrana_proxy.api.openapi import PROVIDER
from webrana_proxy.providers.catalogue import load_catalogue
from webrana_proxy.providers.registry import SPECS, build_registry, provider_ids
from webrana_proxy.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# Migrations are history: a file applied in production is never edited. 0001's CHECK is dropped by 0011.
SQL_HISTORY = {"0001_init.sql"}
SCANNED = (".py", ".sql", ".html", ".js", ".json", ".css")
ENV = {
    "DATABASE_URL": "postgresql://u@127.0.0.1:5432/webrana",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "MASTER_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
    "JWT_SECRET": "x" * 40,
    "MIDTRANS_SERVER_KEY": "SB-Mid-server-abc",
    "MIDTRANS_CLIENT_KEY": "SB-Mid-client-abc",
}


def _files() -> list[Path]:
    out = []
    for top in ("webrana_proxy", "webrana_dashboard", "sql"):
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or path.suffix not in SCANNED:
                continue
            if path.is_relative_to(ROOT / "webrana_proxy" / "providers"):
                continue
            if path.parent == ROOT / "sql" and path.name in SQL_HISTORY:
                continue
            out.append(path)
    return out


def test_no_provider_id_outside_providers() -> None:
    """Core code, SQL and the console never name a provider: they read the registry (or /api/meta)."""
    ids = "|".join(re.escape(i) for i in provider_ids())
    literal = re.compile(rf"""["'](?:{ids})["']|\bprovider\.(?:{ids})\b""")
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in _files()
             for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if literal.search(line)]
    assert not found, "provider ids outside webrana_proxy/providers/:\n" + "\n".join(found)


def test_the_scan_sees_what_it_should() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in _files()}
    assert {"webrana_proxy/settings.py", "webrana_dashboard/views/provider_keys.py",
            "webrana_dashboard/templates/provider_keys.html", "sql/0011_providers.sql"} <= files
    assert not any(f.startswith("webrana_proxy/providers/") for f in files)


def test_specs_are_unique_and_well_formed() -> None:
    ids = provider_ids()
    assert ids == ("openai", "anthropic", "google", "qwen", "deepseek", "openrouter", "mistral", "groq", "xai")
    assert len({s.base_url_env for s in SPECS}) == len(SPECS)
    names = [n for s in SPECS for n in (s.id, *s.aliases)]
    assert len(names) == len(set(names)), "an alias shadows another provider"
    for spec in SPECS:
        assert re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", spec.id), spec.id  # what 0011's CHECK allows
        assert spec.default_base_url.startswith("https://")
        assert spec.base_url_env.endswith("_BASE_URL")


def test_settings_read_every_base_url_from_the_specs() -> None:
    defaults = Settings.from_env(ENV).upstream_base_urls
    assert dict(defaults) == {s.id: s.default_base_url for s in SPECS}
    moved = Settings.from_env({**ENV, **{s.base_url_env: f"http://127.0.0.1:9/{s.id}" for s in SPECS}})
    assert dict(moved.upstream_base_urls) == {s.id: f"http://127.0.0.1:9/{s.id}" for s in SPECS}
    assert moved.upstream_base_urls["deepseek"] == "http://127.0.0.1:9/deepseek"


def test_openapi_enum_and_fakes_follow_the_registry() -> None:
    assert PROVIDER["enum"] == list(provider_ids())
    assert set(PREFIXES) == set(FAKES) == {fake_name(i) for i in provider_ids()}
    assert {fake_name(s.id): s.base_url_env for s in SPECS} == ENV_NAMES


def test_every_provider_has_current_priced_models_callable_by_their_listed_name() -> None:
    """/v1/models lists each current model under the name that routes back to its provider."""
    registry = build_registry()
    catalogue = load_catalogue()
    day = date(2026, 12, 6)
    assert not catalogue.stale(day, 45)
    for provider in registry.all():
        current = catalogue.current(provider.id, day)
        assert current, provider.id
        assert catalogue.fallback(provider.id, day) is not None, provider.id
        for entry in current:
            name = registry.public_name(provider, entry.id)
            route = registry.route(name)
            assert (route.provider, route.model) == (provider, entry.id), name


@pytest.mark.parametrize(("provider", "model", "public"), [
    ("groq", "openai/gpt-oss-120b", "groq/openai/gpt-oss-120b"),
    ("groq", "llama-3.3-70b-versatile", "groq/llama-3.3-70b-versatile"),
    ("openrouter", "deepseek/deepseek-v4-pro", "openrouter/deepseek/deepseek-v4-pro"),
    ("mistral", "mistral-large-2512", "mistral-large-2512"),
    ("mistral", "deepseek-v4-1-flash-1017", "mistral/deepseek-v4-1-flash-1017"),  # a bare name DeepSeek takes
    ("xai", "grok-4.7", "grok-4.7"),
    ("deepseek", "deepseek-v4-flash", "deepseek-v4-flash"),
])
def test_public_model_names(provider: str, model: str, public: str) -> None:
    registry = build_registry()
    assert registry.public_name(registry.get(provider), model) == public
