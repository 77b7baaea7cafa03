"""OpenAI chat request -> Anthropic Messages request (protocols.md section 5). Pure ``dict -> dict``.

Lossy by design (documented, not faked): ``logprobs``, ``seed``, ``logit_bias``, ``frequency_penalty``,
``presence_penalty`` and ``response_format`` have no Anthropic equivalent and are dropped; temperatures
above 1 are clamped to 1; ``n > 1`` is refused with a 400. Images: ``data:`` URLs become base64 image
blocks and ``http(s)`` URLs become URL image sources (Anthropic fetches them itself).
"""

from __future__ import annotations

from typing import Any

from webrana_proxy.errors import BadRequest
from webrana_proxy.providers import messages as m
from webrana_proxy.providers.base import JSON

DEFAULT_MAX_TOKENS = 8192  # Claude 3.5 and newer accept at least this many output tokens
LEGACY_MAX_TOKENS = 4096  # the output limit of the Claude 3 (and older) models
_LEGACY_PREFIXES = ("claude-3-haiku", "claude-3-opus", "claude-3-sonnet", "claude-2", "claude-instant")
PASSED_THROUGH = ("top_p", "top_k", "thinking")  # Anthropic fields a client may send via extra_body


def default_max_tokens(model: str) -> int:
    return LEGACY_MAX_TOKENS if model.startswith(_LEGACY_PREFIXES) else DEFAULT_MAX_TOKENS


def _image_block(part: JSON, param: str) -> JSON:
    url = m.image_url_of(part, param)
    data_url = m.parse_data_url(url)
    if data_url is not None:
        mime, data = data_url
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise BadRequest(f"{param}: image_url must be a data: URL or an http(s) URL", param=param)


def _user_blocks(content: Any, param: str) -> list[JSON]:
    blocks: list[JSON] = []
    for j, part in enumerate(m.parts_of(content, param)):
        kind = part["type"]
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise BadRequest(f"{param}[{j}].text must be a string", param=param)
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part, f"{param}[{j}]"))
        else:
            raise BadRequest(f"{param}[{j}]: content type '{kind}' is not supported for Anthropic models",
                             param=param)
    return blocks


def _assistant_blocks(message: JSON, param: str) -> list[JSON]:
    blocks: list[JSON] = []
    for j, part in enumerate(m.parts_of(message.get("content"), f"{param}.content")):
        text = part.get("text") if part["type"] == "text" else part.get("refusal")
        if part["type"] not in ("text", "refusal") or not isinstance(text, str):
            raise BadRequest(f"{param}.content[{j}]: assistant content must be text", param=param)
        if text:
            blocks.append({"type": "text", "text": text})
    for call_id, name, arguments in m.tool_calls_of(message, param):
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return blocks


def _tool_result(message: JSON, param: str) -> JSON:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"{param}.tool_call_id is required on tool messages", param=param)
    content = m.text_of(message.get("content"), f"{param}.content")
    return {"type": "tool_result", "tool_use_id": call_id, "content": content}


def _append(turns: list[JSON], role: str, blocks: list[JSON]) -> None:
    """Add a turn, merging it into the previous one when the role repeats (Anthropic requires this)."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _compact(turns: list[JSON]) -> None:
    """A turn that is a single text block goes as a plain string, as most clients send it."""
    for turn in turns:
        blocks = turn["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            turn["content"] = blocks[0]["text"]


def _tool_choice(body: JSON, has_tools: bool) -> JSON | None:
    choice = m.tool_choice_of(body)
    parallel = body.get("parallel_tool_calls")
    if not has_tools:
        return None  # Anthropic refuses tool_choice without tools
    out: JSON
    if choice is None:
        out = {"type": "auto"}
    elif choice[0] == "function":
        out = {"type": "tool", "name": choice[1]}
    else:
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice[0]]}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    elif choice is None:
        return None
    return out


def to_anthropic(body: JSON, model: str) -> JSON:
    n = body.get("n")
    if n is not None and n != 1:
        raise BadRequest("n > 1 is not supported for Anthropic models: send one request per completion",
                         param="n")
    system: list[str] = []
    turns: list[JSON] = []
    for i, message in enumerate(m.messages_of(body)):
        role = message["role"]
        param = f"messages[{i}]"
        if role in ("system", "developer"):
            text = m.text_of(message.get("content"), f"{param}.content")
            if text:
                system.append(text)
        elif role == "user":
            _append(turns, "user", _user_blocks(message.get("content"), f"{param}.content"))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message, param))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message, param)])
        else:
            raise BadRequest(f"{param}: unknown role '{role}'", param=param)
    if not turns:
        raise BadRequest("at least one user or assistant message is required", param="messages")
    _compact(turns)

    out: JSON = {"model": model, "messages": turns}
    if system:
        out["system"] = "\n\n".join(system)
    out["max_tokens"] = m.max_tokens_of(body) or default_max_tokens(model)
    temperature = m.number_of(body, "temperature")
    if temperature is not None:
        out["temperature"] = min(1.0, max(0.0, float(temperature)))
    for name in PASSED_THROUGH:
        if body.get(name) is not None:
            out[name] = body[name]
    stop = m.stop_of(body)
    if stop:
        out["stop_sequences"] = stop
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    tools = m.tools_of(body)
    if tools:
        out["tools"] = [
            {
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "input_schema": t.parameters or {"type": "object", "properties": {}},
            }
            for t in tools
        ]
    choice = _tool_choice(body, bool(tools))
    if choice is not None:
        out["tool_choice"] = choice
    if body.get("stream") is True:
        out["stream"] = True
    return out
