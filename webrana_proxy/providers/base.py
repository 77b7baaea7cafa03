"""The contract every provider module fulfils. Core code talks to providers only through this.

A provider turns an OpenAI-shaped request into an ``UpstreamRequest`` (URL from settings, never from the
client), turns the upstream's answer back into OpenAI bytes, and reports usage. Everything here is pure:
no I/O, no clock reads other than ``created`` timestamps, so it is tested offline against recorded bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from webrana_proxy.errors import UpstreamError
from webrana_proxy.netguard import Policy
from webrana_proxy.providers.spec import ProviderSpec

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    guard: Policy | None = None  # set: an admin-given URL; addresses checked (netguard) when connecting


@dataclass(slots=True)
class Usage:
    """Token counts in the OpenAI convention: ``prompt_tokens`` is all input (cache reads and writes are parts
    of it), ``completion_tokens`` all output (reasoning included)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0  # input read from the provider's prompt cache
    cache_write_tokens: int = 0  # input written to the cache (all TTLs)
    cache_write_1h_tokens: int = 0  # of which written with a 1 h TTL (Anthropic)
    reasoning_tokens: int = 0  # of the output, thinking (priced as output; Qwen's thinking mode has its own rate)
    thinking_mode: bool = False  # the call asked for thinking (``enable_thinking``): output at the thinking rate
    service_tier: str | None = None  # as the provider reported it: "flex", "priority", "default", "batch"...
    provider_cost_usd_nano: int | None = None  # the call's cost as the provider reported it (wins when present)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    created: int  # unix seconds, shown in /v1/models
    input_usd_per_mtok: float  # price per million input tokens
    output_usd_per_mtok: float  # price per million output tokens
    kind: str = "chat"  # "chat" | "embedding"
    context_window: int | None = None


@dataclass(slots=True)
class ChatResult:
    body: bytes  # OpenAI chat.completion JSON bytes for the client
    usage: Usage | None
    upstream_id: str | None = None
    usage_estimated: bool = False  # True when the upstream gave no usage and the provider estimated it


class StreamTranslator(Protocol):
    """Feeds raw upstream bytes, yields client bytes (complete SSE events in OpenAI chunk shape).

    ``feed`` may be called with any split of the upstream byte stream. ``finish`` is called once when the
    upstream closed normally and returns the trailing events (usage chunk if the client asked, ``[DONE]``).
    ``usage`` holds the last usage seen (None if the upstream never sent it); ``completion_chars`` counts the
    characters of generated text and tool arguments seen, for estimating when usage never came; ``error`` is
    the in-band error seen, if any (already forwarded to the client in OpenAI shape by ``feed``).
    """

    usage: Usage | None
    completion_chars: int
    error: JSON | None
    upstream_id: str | None
    done: bool  # True once the upstream signalled a normal end of stream

    def feed(self, data: bytes) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...


class MessagesNative(Protocol):
    """A provider whose own wire format is Anthropic Messages: the client's body goes as it came (only the
    model id may change), the answer comes back byte for byte and only usage is read."""

    def messages_request(self, raw: bytes, body: JSON, model: str, api_key: str, base_url: str,
                         client_headers: Mapping[str, str]) -> UpstreamRequest: ...

    def messages_response(self, raw: bytes) -> ChatResult:
        """``body`` is ``raw`` itself; usage read from it."""
        ...

    def messages_stream(self) -> StreamTranslator:
        """Bytes through; usage from ``message_start`` and ``message_delta``."""
        ...

    def count_tokens_request(self, raw: bytes, body: JSON, model: str, api_key: str, base_url: str,
                             client_headers: Mapping[str, str]) -> UpstreamRequest: ...


class ResponsesRelay(StreamTranslator, Protocol):
    """A native Responses stream relay: also reports the response id once known (``on_id``, called at most once)
    and writes the relay's own errors as Responses events."""

    on_id: Callable[[str], None] | None

    def inband_error(self, chat_error: JSON) -> bytes: ...


class ResponsesNative(Protocol):
    """A provider whose own wire format is OpenAI Responses: the client's body goes as it came (only the model
    id may change), the answer comes back byte for byte and only usage is read. Stored responses are read and
    deleted at the provider (``stored_request``) with the key that created them."""

    def responses_request(self, raw: bytes, body: JSON, model: str, api_key: str,
                          base_url: str) -> UpstreamRequest: ...

    def responses_response(self, raw: bytes) -> ChatResult:
        """``body`` is ``raw`` itself; usage located in it."""
        ...

    def responses_stream(self) -> ResponsesRelay:
        """Bytes through; usage from the final event."""
        ...

    def stored_request(self, method: str, response_id: str, query: str, api_key: str,
                       base_url: str) -> UpstreamRequest: ...


class TokenCounter(Protocol):
    """A provider that counts a prompt's tokens itself (given the request in the internal chat form)."""

    def count_tokens_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest: ...

    def count_tokens_response(self, raw: bytes) -> int: ...


class Provider(Protocol):
    spec: ProviderSpec  # what it is, as data (id, names, base-URL setting, key format, capabilities)
    id: str  # spec.id
    display_name: str  # spec.display_name: "OpenAI", shown in the console
    key_prefixes: tuple[str, ...]  # accepted key prefixes, e.g. ("sk-",); used to check key format
    supports_embeddings: bool
    chat_native: bool  # True when the chat form is this provider's own format (the body goes almost as it came)
    messages_native: MessagesNative | None  # set when Anthropic Messages is this provider's own format
    responses_native: ResponsesNative | None  # set when OpenAI Responses is this provider's own format
    token_counter: TokenCounter | None  # set when the provider can count a prompt's tokens

    def owns_model(self, model: str) -> bool: ...

    def accepts_key(self, key: str) -> bool:
        """Whether ``key`` has this provider's key format (prefix, length, characters): one
        ``keyformat.KeyFormat`` per provider, which requires printable ASCII of every provider's keys."""
        ...

    def chat_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest:
        """``body`` is the client's parsed request; ``model`` the upstream model name (prefix stripped).
        Raises ``BadRequest`` for inputs this provider cannot honour (e.g. n > 1 on Anthropic)."""
        ...

    def chat_response(self, raw: bytes, model: str) -> ChatResult: ...

    def stream_translator(self, model: str, include_usage: bool) -> StreamTranslator: ...

    def embeddings_request(self, body: JSON, model: str, api_key: str, base_url: str) -> UpstreamRequest: ...

    def embeddings_response(self, raw: bytes, model: str, request: JSON | None = None) -> ChatResult:
        """``request`` (the client's parsed body, optional) lets a provider estimate usage when the upstream
        reports none and honour ``encoding_format: "base64"`` when the upstream only returns floats."""
        ...

    def models_request(self, api_key: str, base_url: str) -> UpstreamRequest:
        """A cheap authenticated call (list models) used to test a stored key."""
        ...

    def upstream_error(self, status: int, raw: bytes, headers: dict[str, str]) -> UpstreamError:
        """Map an upstream error answer to an ``UpstreamError`` in OpenAI terms (status, type, message,
        retry-after passed on, ``retryable`` True for 429/5xx)."""
        ...


@dataclass(slots=True)
class Route:
    provider: Provider
    model: str  # upstream model name
    requested: str = field(default="")  # what the client asked for
