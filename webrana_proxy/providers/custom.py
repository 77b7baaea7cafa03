"""Admins' own OpenAI-compatible upstreams (a self-hosted vLLM/TGI/Ollama serving Sahabat-AI or SEA-LION, an
Indonesian provider's OpenAI-style API): a ``ProviderSpec`` built from a row of ``upstreams``, not from code.

What differs from a built-in OpenAI-shaped provider:

* the base URL is the row's (admin input), so every request it builds carries ``guard``: the gateway's pool
  resolves the host and checks every address with ``netguard`` when it opens a connection, and connects only to
  the checked addresses (``upstreamhttp``);
* the key goes as ``Authorization: Bearer <key>`` or in a named header (``x-api-key: <key>``); the row's static
  headers go on every request; a keyless upstream is called with no key at all;
* keys only have to be printable ASCII (we do not know the upstream's format);
* the model prefix: ``sahabat/`` (ending in ``/``) is stripped before the call (``sahabat/gemma2-9b`` asks the
  upstream for ``gemma2-9b``), like ``groq/``; a prefix without ``/`` (``sealion-``) is part of the model id and
  sent as it is, like ``deepseek-``. ``<slug>/<model>`` always works too.
* usage: an upstream that reports none (or only fields we cannot read) gets an estimate marked
  ``tokens_estimated`` (the gateway's usual rule; ``usage_of`` reads only the OpenAI fields).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from webrana_proxy.netguard import Policy
from webrana_proxy.providers.base import JSON, UpstreamRequest
from webrana_proxy.providers.keyformat import KeyFormat
from webrana_proxy.providers.openai_compat import OpenAICompatProvider
from webrana_proxy.providers.spec import Capabilities, ProviderSpec

ANY_PRINTABLE_KEY = KeyFormat(("",), 1, hint="a key is printable ASCII without spaces")
KEYLESS_NAMESPACE = uuid.UUID("6b1f0d1e-8a36-4d53-9a7a-1c2f3e4d5a6b")  # keyless "key" ids: uuid5(ns, slug)


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One row of ``upstreams``, as the provider needs it."""

    id: uuid.UUID
    slug: str  # the provider id: api_keys.provider, proxy_requests.provider, "<slug>/<model>"
    name: str
    base_url: str
    model_prefix: str  # "sahabat/" (stripped) or "sealion-" (kept)
    auth_header: str | None = None  # None: Authorization: Bearer <key>; else "<auth_header>: <key>"
    static_headers: Mapping[str, str] = field(default_factory=dict)
    keyless: bool = False


class CustomProvider(OpenAICompatProvider):
    """An admin's OpenAI-compatible upstream; the spec's ``default_base_url`` is the row's URL."""

    def __init__(self, spec: ProviderSpec, config: UpstreamConfig, guard: Policy) -> None:
        super().__init__(spec)
        self.config = config
        self.guard = guard
        fixed = {"Content-Type": "application/json", **config.static_headers}
        self._fixed = fixed

    def _headers(self, api_key: str) -> dict[str, str]:
        headers = dict(self._fixed)
        if api_key:
            if self.config.auth_header is None:
                headers["Authorization"] = f"Bearer {api_key}"
            else:
                headers[self.config.auth_header] = api_key
        return headers

    def chat_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest:
        req = super().chat_request(body, model, api_key, base_url)
        return UpstreamRequest(req.method, req.url, req.headers, req.body, guard=self.guard)

    def embeddings_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest:
        out = body if body.get("model") == model else {**body, "model": model}
        return UpstreamRequest("POST", f"{base_url.rstrip('/')}/embeddings", self._headers(api_key),
                               orjson.dumps(out), guard=self.guard)

    def models_request(self, api_key: str, base_url: str) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{base_url.rstrip('/')}/models", self._headers(api_key), guard=self.guard)


def keyless_key_id(slug: str) -> uuid.UUID:
    """The stand-in key id of a keyless upstream (its circuit breaker, the usage row's key)."""
    return uuid.uuid5(KEYLESS_NAMESPACE, slug)


def spec_of(config: UpstreamConfig, guard: Policy) -> ProviderSpec:
    """The provider spec of one upstream row. A prefix ending in ``/`` becomes an alias of the id (routing strips
    it); any other prefix is a bare-model prefix (the model id goes upstream whole)."""
    prefix = config.model_prefix
    slashed = prefix.endswith("/")
    alias = prefix[:-1] if slashed and prefix[:-1] != config.slug else None

    def make(spec: ProviderSpec) -> CustomProvider:
        return CustomProvider(spec, config, guard)

    return ProviderSpec(
        id=config.slug, display_name=config.name, base_url_env="", default_base_url=config.base_url,
        key_format=ANY_PRINTABLE_KEY, make=make, model_prefixes=() if slashed else (prefix,),
        aliases=(alias,) if alias else (), explicit_form=f"{prefix}<model>" if slashed else "",
        capabilities=Capabilities(embeddings=True), keyless_key_id=keyless_key_id(config.slug)
        if config.keyless else None, custom=True)
