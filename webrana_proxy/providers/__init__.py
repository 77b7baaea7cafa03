"""Upstream providers behind one contract (``base.Provider``), chosen by ``registry.Registry``."""

from webrana_proxy.providers.base import (
    JSON,
    ChatResult,
    ModelInfo,
    Provider,
    Route,
    StreamTranslator,
    UpstreamRequest,
    Usage,
)
from webrana_proxy.providers.estimate import estimate_prompt_tokens, estimate_tokens
from webrana_proxy.providers.registry import Registry, build_registry

__all__ = [
    "JSON",
    "ChatResult",
    "ModelInfo",
    "Provider",
    "Registry",
    "Route",
    "StreamTranslator",
    "UpstreamRequest",
    "Usage",
    "build_registry",
    "estimate_prompt_tokens",
    "estimate_tokens",
]
