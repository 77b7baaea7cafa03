"""What Webrana does with each request parameter, per provider and per ingress dialect: the conformance table.

The single source of truth for parameter handling. ``tests/providers/test_conformance.py`` sends every row's
sample through the real translators (dialect adapter -> model capabilities -> provider translator, or the
provider's native lane) and checks each cell against the body the upstream would receive; ``docs/parameters.md``
is rendered from it (``python -m webrana_proxy.providers.conformance > docs/parameters.md``; a test fails when the
page is out of date). Each cell is one of:

- ``passed``: sent on as the client wrote it (``sent`` lists the upstream fields and their values);
- ``mapped``: sent as the provider spells it (``sent``: the upstream fields; ``absent``: keys that must not remain);
- ``dropped``: left out, documented here (``absent``: the keys that appear nowhere in the upstream body);
- ``refused``: a 400 naming ``param`` before anything goes upstream;
- ``n/a``: the dialect has no such parameter.

Paths in ``sent`` are dotted, with list indexes as numbers (``messages.0.content.1.image_url.url``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from webrana_proxy.providers.anthropic_request import ANSWER_TOOL

Kind = Literal["passed", "mapped", "dropped", "refused", "n/a"]
DIALECTS = ("chat", "messages", "responses")
ENDPOINTS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
PROVIDERS = ("openai", "anthropic", "google", "qwen", "deepseek", "openrouter", "mistral", "groq", "xai")
NAMES = {"openai": "OpenAI", "anthropic": "Anthropic", "google": "Gemini", "qwen": "Qwen", "deepseek": "DeepSeek",
         "openrouter": "OpenRouter", "mistral": "Mistral", "groq": "Groq", "xai": "xAI"}
# The dialect each provider speaks itself: there the client's body goes as it came (the native lane).
NATIVE = {"messages": "anthropic", "responses": "openai"}
# The upstream model each provider's cells are checked with (reasoning models, so reasoning maps).
MODELS = {"openai": "gpt-5-mini", "anthropic": "claude-sonnet-4-5", "google": "gemini-2.5-flash",
          "qwen": "qwen-plus", "deepseek": "deepseek-chat", "openrouter": "deepseek/deepseek-v4-flash",
          "mistral": "mistral-small-latest", "groq": "openai/gpt-oss-120b", "xai": "grok-3-mini"}
# The smallest request of each dialect; a row's sample is merged into it (replacing ``messages`` / ``input``).
BASE: dict[str, dict[str, Any]] = {
    "chat": {"messages": [{"role": "user", "content": "hai"}]},
    "messages": {"max_tokens": 32000, "messages": [{"role": "user", "content": "hai"}]},
    "responses": {"input": "hai", "store": False},
}


@dataclass(frozen=True, slots=True)
class Cell:
    kind: Kind
    sent: Mapping[str, Any] = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    param: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    dialect: str
    parameter: str  # as the client writes it in this dialect
    sample: Mapping[str, Any] | None  # merged into ``BASE[dialect]``; None for an n/a row
    cells: Mapping[str, Cell]


def passed(sent: Mapping[str, Any], note: str = "") -> Cell:
    return Cell("passed", sent=sent, note=note)


def mapped(sent: Mapping[str, Any], absent: tuple[str, ...] = (), note: str = "") -> Cell:
    return Cell("mapped", sent=sent, absent=absent, note=note)


def dropped(absent: tuple[str, ...], note: str) -> Cell:
    return Cell("dropped", absent=absent, note=note)


def refused(param: str, note: str) -> Cell:
    return Cell("refused", param=param, note=note)


NA = Cell("n/a")


def row(dialect: str, parameter: str, sample: Mapping[str, Any], everyone: Cell, **per_provider: Cell) -> Row:
    return Row(dialect, parameter, sample, {p: per_provider.get(p, everyone) for p in PROVIDERS})


def like(chat: Row, dialect: str, parameter: str, sample: Mapping[str, Any], native: Cell,
         **per_provider: Cell) -> Row:
    """A row of another dialect whose adapter gives the chat form of ``chat``: the same cells, but the native
    provider's (the body as it came) and any named. A chat field the dialect spells otherwise is mapped, not
    passed."""
    cells = {p: per_provider.get(p, _respelled(chat.cells[p], sample)) for p in PROVIDERS}
    cells[NATIVE[dialect]] = native
    return Row(dialect, parameter, sample, cells)


def _respelled(cell: Cell, sample: Mapping[str, Any]) -> Cell:
    if cell.kind == "passed" and any(path.split(".")[0] not in sample for path in cell.sent):
        return Cell("mapped", sent=cell.sent, absent=cell.absent, note=cell.note)
    return cell


def not_in(dialect: str, parameter: str) -> Row:
    return Row(dialect, parameter, None, dict.fromkeys(PROVIDERS, NA))


# ---- samples ----

SCHEMA = {"type": "object", "properties": {"kota": {"type": "string"}, "suhu": {"type": "number"}},
          "required": ["kota", "suhu"]}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA, "strict": True}}
EPHEMERAL = {"type": "ephemeral"}
IMAGE_URL = "https://example.com/kucing.jpg"
PNG = "iVBORw0KGgo="
DATA_URL = f"data:image/png;base64,{PNG}"
WEATHER = {"type": "object", "properties": {"kota": {"type": "string"}}}
CHAT_TOOL = {"type": "function", "function": {"name": "cuaca", "parameters": WEATHER}}


def _chat_image(url: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "apa ini?"},
                                                      {"type": "image_url", "image_url": {"url": url}}]}]}


AUTO_CACHE = ("caches prompt prefixes on its own (cache hits are read from its usage); the marker is left out, "
              "as an unknown field in a content part would be refused")
NO_IMAGES = "its models take no images"
NO_LOGPROBS = "no token probabilities on this provider"
EFFORT_TO_THINKING = ("`thinking.budget_tokens` by effort (minimal 1,024, low 2,048, medium 8,192, high and xhigh "
                      "16,384), kept below `max_tokens` (raised by the budget when the client set none); thinking "
                      "stays off with a forced tool or on a turn that answers a tool call (the chat form cannot "
                      "carry Anthropic's signed thinking blocks); `temperature`, `top_k` and a `top_p` below 0.95 "
                      "are left out while thinking")

# ---- chat (/v1/chat/completions) ----

C_SCHEMA = row(
    "chat", "response_format: json_schema", {"response_format": JSON_SCHEMA}, passed({"response_format": JSON_SCHEMA}),
    anthropic=mapped({"tools.0.name": ANSWER_TOOL, "tools.0.input_schema": SCHEMA,
                      "tool_choice": {"type": "tool", "name": ANSWER_TOOL}}, ("response_format",),
                     f"a forced tool (`{ANSWER_TOOL}`) whose input schema is the answer's; its call comes back as "
                     "the answer's JSON text, finish_reason `stop` (with client tools the model must call one of "
                     "them or answer; the schema must describe an object)"),
    google=mapped({"generationConfig.responseMimeType": "application/json",
                   "generationConfig.responseJsonSchema": SCHEMA}, ("response_format",)),
    deepseek=mapped({"response_format": {"type": "json_object"}, "messages.0.role": "system"}, (),
                    "DeepSeek takes `json_object` only: the schema goes in a leading system message"),
)
C_OBJECT = row(
    "chat", "response_format: json_object", {"response_format": {"type": "json_object"}},
    passed({"response_format": {"type": "json_object"}}),
    anthropic=mapped({"tools.0.input_schema": {"type": "object"}, "tool_choice.name": ANSWER_TOOL},
                     ("response_format",), "the same forced tool, for any object"),
    google=mapped({"generationConfig.responseMimeType": "application/json"}, ("response_format",)),
)
C_EFFORT = row(
    "chat", "reasoning_effort", {"reasoning_effort": "high"}, passed({"reasoning_effort": "high"}),
    anthropic=mapped({"thinking": {"type": "enabled", "budget_tokens": 16384}, "max_tokens": 16384 + 8192},
                     ("reasoning_effort",), EFFORT_TO_THINKING),
    google=mapped({"generationConfig.thinkingConfig.thinkingBudget": 24576}, ("reasoning_effort",),
                  "`thinkingConfig.thinkingBudget`: none and minimal 0, low 1,024, medium 8,192, high and "
                  "xhigh 24,576"),
    qwen=mapped({"enable_thinking": True, "thinking_budget": 16384}, ("reasoning_effort",),
                "`enable_thinking` + `thinking_budget` (minimal 1,024, low 2,048, medium 8,192, high 16,384, "
                "xhigh 32,768)"),
    deepseek=mapped({"reasoning_effort": "high", "thinking": {"type": "enabled"}}, (),
                    "with `thinking: {type: enabled}`; DeepSeek maps the effort to its own levels"),
    openrouter=mapped({"reasoning": {"effort": "high"}}, ("reasoning_effort",),
                      "OpenRouter's `reasoning.effort`, which it maps for every vendor"),
    mistral=passed({"reasoning_effort": "high"}, "Mistral's two levels: none and minimal go as `none`, the rest as "
                                                 "`high` (mistral-small, mistral-medium-3-5)"),
    xai=passed({"reasoning_effort": "high"}, "grok-3-mini takes it; Grok 4 models refuse it upstream"),
    openai=passed({"reasoning_effort": "high"}, "left out for models without reasoning on the Messages and "
                                                "Responses lanes (capabilities.json); Chat goes as it came"),
)
C_EFFORT_NONE = row(
    "chat", "reasoning_effort: none", {"reasoning_effort": "none"}, passed({"reasoning_effort": "none"}),
    anthropic=dropped(("reasoning_effort", "thinking"), "thinking stays off"),
    google=mapped({"generationConfig.thinkingConfig.thinkingBudget": 0}, ("reasoning_effort",)),
    qwen=mapped({"enable_thinking": False}, ("reasoning_effort",), "turns off the thinking hybrid models do by "
                                                                    "default"),
    deepseek=mapped({"thinking": {"type": "disabled"}}, ("reasoning_effort",), "turns off DeepSeek's default "
                                                                                "thinking"),
    openrouter=mapped({"reasoning": {"effort": "none"}}, ("reasoning_effort",)),
)
C_CACHE = row(
    "chat", "cache_control on content parts",
    {"messages": [{"role": "system", "content": [{"type": "text", "text": "Kamu asisten.",
                                                  "cache_control": EPHEMERAL}]},
                  {"role": "user", "content": [{"type": "text", "text": "hai", "cache_control": EPHEMERAL}]}]},
    dropped(("cache_control",), AUTO_CACHE),
    anthropic=mapped({"system.0.cache_control": EPHEMERAL, "messages.0.content.0.cache_control": EPHEMERAL}, (),
                     "on the same system, text, image and tool-result blocks (and on tools); cache reads and "
                     "writes are read from the usage"),
    qwen=passed({"messages.0.content.0.cache_control": EPHEMERAL, "messages.1.content.0.cache_control": EPHEMERAL},
                "DashScope's explicit cache; `cached_tokens` and `cache_creation_input_tokens` are read"),
    openrouter=passed({"messages.0.content.0.cache_control": EPHEMERAL,
                       "messages.1.content.0.cache_control": EPHEMERAL}, "sent on to the vendors that read it"),
    google=dropped(("cache_control",), "Gemini caches implicitly; `cachedContentTokenCount` is read as cache reads"),
)
C_IMAGE_URL = row(
    "chat", "image_url: http(s) URL", _chat_image(IMAGE_URL),
    passed({"messages.0.content.1.image_url.url": IMAGE_URL}, "the provider fetches it; Webrana never does"),
    anthropic=mapped({"messages.0.content.1.source": {"type": "url", "url": IMAGE_URL}}, (),
                     "a URL image source: Anthropic fetches it"),
    google=refused("messages[0].content[1].image_url",
                   "Gemini takes images as base64 (`inlineData`) or as its own Files API URIs (`fileData`); it "
                   "fetches no other URL and neither does Webrana"),
    deepseek=refused("messages[0].content[1]", NO_IMAGES),
)
C_IMAGE_DATA = row(
    "chat", "image_url: base64 data: URL", _chat_image(DATA_URL),
    passed({"messages.0.content.1.image_url.url": DATA_URL}),
    anthropic=mapped({"messages.0.content.1.source": {"type": "base64", "media_type": "image/png", "data": PNG}}),
    google=mapped({"contents.0.parts.1.inlineData": {"mimeType": "image/png", "data": PNG}}),
    deepseek=refused("messages[0].content[1]", NO_IMAGES),
)
C_SEED = row(
    "chat", "seed", {"seed": 4242}, passed({"seed": 4242}),
    anthropic=dropped(("seed",), "Anthropic has no seed"),
    google=mapped({"generationConfig.seed": 4242}),
    mistral=mapped({"random_seed": 4242}, ("seed",)),
)
C_STOP = row(
    "chat", "stop", {"stop": ["###"]}, passed({"stop": ["###"]}),
    anthropic=mapped({"stop_sequences": ["###"]}, ("stop",)),
    google=mapped({"generationConfig.stopSequences": ["###"]}, ("stop",)),
)
C_TOP_P = row(
    "chat", "top_p", {"top_p": 0.9}, passed({"top_p": 0.9}),
    google=mapped({"generationConfig.topP": 0.9}, ("top_p",)),
)
C_N = row(
    "chat", "n", {"n": 2}, passed({"n": 2}),
    anthropic=refused("n", "one completion per request: send n requests"),
    google=mapped({"generationConfig.candidateCount": 2}, ("n",)),
    groq=passed({"n": 2}, "Groq answers 400 for n > 1"),
)
C_LOGPROBS = row(
    "chat", "logprobs, top_logprobs", {"logprobs": True, "top_logprobs": 2},
    passed({"logprobs": True, "top_logprobs": 2}),
    anthropic=refused("logprobs", NO_LOGPROBS),
    google=refused("logprobs", "not read back from Gemini's answers yet"),
    mistral=refused("logprobs", NO_LOGPROBS + " (Mistral would answer 422)"),
    groq=passed({"logprobs": True, "top_logprobs": 2}, "Groq answers 400: not supported"),
)
C_PARALLEL = row(
    "chat", "parallel_tool_calls", {"tools": [CHAT_TOOL], "parallel_tool_calls": False},
    passed({"parallel_tool_calls": False}),
    anthropic=mapped({"tool_choice.disable_parallel_tool_use": True}, ("parallel_tool_calls",)),
    google=dropped(("parallel_tool_calls",), "Gemini has no switch: it may call several functions at once"),
)
C_USER = row(
    "chat", "user", {"user": "u-42"}, passed({"user": "u-42"}),
    anthropic=mapped({"metadata.user_id": "u-42"}, ("user",)),
    google=dropped(("user",), "Gemini has no end-user field"),
    mistral=dropped(("user",), "Mistral has no end-user field (it would answer 422)"),
)
CHAT = (C_SCHEMA, C_OBJECT, C_EFFORT, C_EFFORT_NONE, C_CACHE, C_IMAGE_URL, C_IMAGE_DATA, C_SEED, C_STOP, C_TOP_P,
        C_N, C_LOGPROBS, C_PARALLEL, C_USER)

# ---- messages (/v1/messages): Anthropic native, the others through the chat form ----


def _native(sent: Mapping[str, Any]) -> Cell:
    return passed(sent, "native lane: the body goes as it came")


def _messages_image(source: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "apa ini?"},
                                                      {"type": "image", "source": source}]}]}


M_TOOL = {"name": "cuaca", "input_schema": WEATHER}
MESSAGES = (
    like(C_SCHEMA, "messages", "output_config.format (or output_format): json_schema",
         {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
         _native({"output_config.format.schema": SCHEMA})),
    like(C_EFFORT, "messages", "thinking (budget_tokens 16,384 and more: high)",
         {"thinking": {"type": "enabled", "budget_tokens": 20000}},
         _native({"thinking": {"type": "enabled", "budget_tokens": 20000}})),
    like(C_CACHE, "messages", "cache_control on blocks",
         {"system": [{"type": "text", "text": "Kamu asisten.", "cache_control": EPHEMERAL}],
          "messages": [{"role": "user", "content": [{"type": "text", "text": "hai", "cache_control": EPHEMERAL}]}]},
         _native({"system.0.cache_control": EPHEMERAL, "messages.0.content.0.cache_control": EPHEMERAL})),
    like(C_IMAGE_URL, "messages", "image: url source", _messages_image({"type": "url", "url": IMAGE_URL}),
         _native({"messages.0.content.1.source.url": IMAGE_URL})),
    like(C_IMAGE_DATA, "messages", "image: base64 source",
         _messages_image({"type": "base64", "media_type": "image/png", "data": PNG}),
         _native({"messages.0.content.1.source.data": PNG})),
    not_in("messages", "seed"),
    like(C_STOP, "messages", "stop_sequences", {"stop_sequences": ["###"]}, _native({"stop_sequences": ["###"]})),
    like(C_TOP_P, "messages", "top_p", {"top_p": 0.9}, _native({"top_p": 0.9})),
    not_in("messages", "n"),
    not_in("messages", "logprobs"),
    like(C_PARALLEL, "messages", "tool_choice.disable_parallel_tool_use",
         {"tools": [M_TOOL], "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
         _native({"tool_choice.disable_parallel_tool_use": True})),
    like(C_USER, "messages", "metadata.user_id", {"metadata": {"user_id": "u-42"}},
         _native({"metadata.user_id": "u-42"})),
    row("messages", "top_k", {"top_k": 5}, dropped(("top_k",), "the chat form has no top_k"),
        anthropic=_native({"top_k": 5})),
)

# ---- responses (/v1/responses): OpenAI native, the others through the chat form ----


def _responses_image(url: str) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": [{"type": "input_text", "text": "apa ini?"},
                                                   {"type": "input_image", "image_url": url}]}]}


RESPONSES = (
    like(C_SCHEMA, "responses", "text.format: json_schema",
         {"text": {"format": {"type": "json_schema", "name": "response", "schema": SCHEMA, "strict": True}}},
         _native({"text.format.schema": SCHEMA})),
    like(C_OBJECT, "responses", "text.format: json_object", {"text": {"format": {"type": "json_object"}}},
         _native({"text.format.type": "json_object"})),
    like(C_EFFORT, "responses", "reasoning.effort", {"reasoning": {"effort": "high"}},
         _native({"reasoning.effort": "high"})),
    like(C_EFFORT_NONE, "responses", "reasoning.effort: none", {"reasoning": {"effort": "none"}},
         _native({"reasoning.effort": "none"})),
    row("responses", "prompt_cache_key", {"prompt_cache_key": "sesi-1"},
        dropped(("prompt_cache_key",), "the providers behind the chat form cache on their own or by markers"),
        openai=_native({"prompt_cache_key": "sesi-1"})),
    like(C_IMAGE_URL, "responses", "input_image: http(s) URL", _responses_image(IMAGE_URL),
         _native({"input.0.content.1.image_url": IMAGE_URL})),
    like(C_IMAGE_DATA, "responses", "input_image: base64 data: URL", _responses_image(DATA_URL),
         _native({"input.0.content.1.image_url": DATA_URL})),
    not_in("responses", "seed"),
    not_in("responses", "stop"),
    like(C_TOP_P, "responses", "top_p", {"top_p": 0.9}, _native({"top_p": 0.9})),
    not_in("responses", "n"),
    like(C_LOGPROBS, "responses", "top_logprobs", {"top_logprobs": 2}, _native({"top_logprobs": 2})),
    like(C_PARALLEL, "responses", "parallel_tool_calls",
         {"tools": [{"type": "function", "name": "cuaca", "parameters": WEATHER}], "parallel_tool_calls": False},
         _native({"parallel_tool_calls": False})),
    like(C_USER, "responses", "safety_identifier (or user)", {"safety_identifier": "u-42"},
         _native({"safety_identifier": "u-42"})),
)

TABLE: tuple[Row, ...] = (*CHAT, *MESSAGES, *RESPONSES)


# ---- the docs page ----

HEADER = """# Parameters: what Webrana does with each one, per provider

<!-- Generated from webrana_proxy/providers/conformance.py by
     `python -m webrana_proxy.providers.conformance > docs/parameters.md`: do not edit by hand. -->

Each request parameter is, per provider:

- **passed**: sent on as you wrote it (the provider decides);
- **→ `field`**: mapped to the provider's own field(s);
- **dropped**: left out, for the reason in the notes;
- **400 `field`**: refused before anything is sent, with an error naming the field;
- **n/a**: the dialect has no such parameter.

On the translated lanes (every dialect into a provider whose own format it is not: Chat into Anthropic or Gemini,
Messages and Responses into any other provider) the model's capabilities (`providers/pricedata/capabilities.json`)
apply first: no reasoning parameter for a model without reasoning, output limits no higher than the model's.
Images given by URL are passed on for the provider to fetch; Webrana never fetches a URL.

Every cell is checked by `tests/providers/test_conformance.py` against the body the provider would receive, with
these models:
{models}"""


def _field(path: str) -> str:
    """A ``sent`` path as a field name: ``messages.0.content.1.source`` -> ``messages[].content[].source``."""
    return "".join("[]" if step.isdigit() else f".{step}" for step in path.split(".")).lstrip(".")


def _short(cell: Cell) -> str:
    if cell.kind == "mapped":
        return "→ " + ", ".join(f"`{f}`" for f in sorted({_field(path) for path in cell.sent}))
    if cell.kind == "refused":
        return f"400 `{cell.param}`"
    return cell.kind


def render() -> str:
    models = "\n".join(f"- {NAMES[p]}: `{MODELS[p]}`" for p in PROVIDERS)
    out = [HEADER.format(models=models)]
    for dialect in DIALECTS:
        out.append(f"\n## {dialect} (`{ENDPOINTS[dialect]}`)\n")
        native = NATIVE.get(dialect)
        if native is not None:
            out.append(f"{NAMES[native]} speaks this dialect itself: its requests go as they came.\n")
        out.append("| parameter | " + " | ".join(NAMES[p] for p in PROVIDERS) + " |")
        out.append("|---" * (len(PROVIDERS) + 1) + "|")
        notes: list[str] = []
        for r in TABLE:
            if r.dialect != dialect:
                continue
            cells = []
            for p in PROVIDERS:
                cell = r.cells[p]
                text = _short(cell)
                if cell.note:
                    if cell.note not in notes:
                        notes.append(cell.note)
                    text += f" [{notes.index(cell.note) + 1}]"
                cells.append(text)
            out.append(f"| `{r.parameter}` | " + " | ".join(cells) + " |")
        if notes:
            out.append("")
            out.extend(f"{i}. {note}" for i, note in enumerate(notes, 1))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
