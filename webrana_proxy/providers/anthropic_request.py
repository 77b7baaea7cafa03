"""OpenAI chat request -> Anthropic Messages request (protocols.md section 5). Pure ``dict -> dict``.

What each parameter becomes is the conformance table (``conformance.py``, rendered into docs/parameters.md):

- ``response_format`` (``json_schema`` / ``json_object``) -> a forced tool, ``ANSWER_TOOL``, whose input schema is
  the answer's; ``anthropic_response`` turns its call back into the answer's JSON text (finish_reason ``stop``).
- ``reasoning_effort`` -> ``thinking: {type: enabled, budget_tokens}`` (``THINKING_BUDGETS``), kept below
  ``max_tokens``; off for ``none``, for a forced tool and for a turn that continues a tool call (the chat form
  cannot carry Anthropic's signed thinking blocks, which such a turn would need). With thinking on,
  ``temperature`` and ``top_k`` are left out and a ``top_p`` below 0.95 too (Anthropic refuses them).
- ``cache_control`` on content parts and tools -> the same marker on the Anthropic block (system blocks included).
- ``seed``, ``logit_bias``, ``frequency_penalty``, ``presence_penalty`` are dropped; temperatures above 1 are
  clamped to 1; ``n > 1`` and ``logprobs`` are refused with a 400 naming the field.
- images: ``data:`` URLs become base64 image blocks, ``http(s)`` URLs URL image sources (Anthropic fetches them;
  Webrana never does).
"""

from __future__ import annotations

from typing import Any

from webrana_proxy.errors import BadRequest
from webrana_proxy.providers import messages as m
from webrana_proxy.providers.base import JSON
from webrana_proxy.providers.prompt_cache import MARKER, marker_of
from webrana_proxy.providers.reasoning import effort_of

DEFAULT_MAX_TOKENS = 8192  # Claude 3.5 and newer accept at least this many output tokens
LEGACY_MAX_TOKENS = 4096  # the output limit of the Claude 3 (and older) models
_LEGACY_PREFIXES = ("claude-3-haiku", "claude-3-opus", "claude-3-sonnet", "claude-2", "claude-instant")
PASSED_THROUGH = ("top_p", "top_k", "thinking")  # Anthropic fields a client may send via extra_body
ANSWER_TOOL = "webrana_json_answer"  # the forced tool a JSON answer is asked through (reserved: not a client tool)
ANSWER_ABOUT = "Give your final answer by calling this tool: its input is the answer."
# reasoning_effort -> thinking.budget_tokens (Anthropic's minimum is 1,024). The bands match the Messages
# dialect's way back (below 4,096 "low", below 16,384 "medium", else "high"), so an effort survives a round trip.
THINKING_BUDGETS = {"minimal": 1_024, "low": 2_048, "medium": 8_192, "high": 16_384, "xhigh": 16_384}
MIN_THINKING_BUDGET = 1_024
MIN_THINKING_TOP_P = 0.95  # with thinking on, Anthropic takes top_p only from 0.95 to 1


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


def _marked(block: JSON, part: JSON, param: str) -> JSON:
    """``block`` with the part's ``cache_control``, if it has one."""
    marker = marker_of(part, param)
    if marker is not None:
        block[MARKER] = marker
    return block


def _user_blocks(content: Any, param: str) -> list[JSON]:
    blocks: list[JSON] = []
    for j, part in enumerate(m.parts_of(content, param)):
        kind = part["type"]
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise BadRequest(f"{param}[{j}].text must be a string", param=param)
            if text:
                blocks.append(_marked({"type": "text", "text": text}, part, f"{param}[{j}]"))
        elif kind == "image_url":
            blocks.append(_marked(_image_block(part, f"{param}[{j}]"), part, f"{param}[{j}]"))
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
            blocks.append(_marked({"type": "text", "text": text}, part, f"{param}.content[{j}]"))
    for call_id, name, arguments in m.tool_calls_of(message, param):
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return blocks


def _tool_result(message: JSON, param: str) -> JSON:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"{param}.tool_call_id is required on tool messages", param=param)
    content = message.get("content")
    block: JSON = {"type": "tool_result", "tool_use_id": call_id,
                   "content": m.text_of(content, f"{param}.content")}
    for j, part in enumerate(content if isinstance(content, list) else ()):
        _marked(block, part, f"{param}.content[{j}]")  # a marked part marks the whole result
    return block


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
        if len(blocks) == 1 and blocks[0]["type"] == "text" and MARKER not in blocks[0]:
            turn["content"] = blocks[0]["text"]


def _tool_choice(body: JSON, has_tools: bool, answer: bool) -> JSON | None:
    """Anthropic's ``tool_choice``; with a JSON answer asked for (``answer``), one that makes the model either
    call a client tool or answer through ``ANSWER_TOOL``."""
    choice = m.tool_choice_of(body)
    parallel = body.get("parallel_tool_calls")
    if not has_tools and not answer:
        return None  # Anthropic refuses tool_choice without tools
    out: JSON
    if choice is not None and choice[0] == "function":
        out = {"type": "tool", "name": choice[1]}
    elif answer:
        client_tools = has_tools and (choice is None or choice[0] != "none")
        out = {"type": "any"} if client_tools else {"type": "tool", "name": ANSWER_TOOL}
    elif choice is None:
        out = {"type": "auto"}
    else:
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice[0]]}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    elif choice is None and not answer:
        return None
    return out


def _answer_tool(body: JSON) -> JSON | None:
    """The forced tool a ``response_format`` of JSON becomes (None for text or none asked)."""
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in (None, "text") and isinstance(fmt, dict):
        return None
    about = ANSWER_ABOUT
    if kind == "json_object":
        schema: Any = {"type": "object"}
    elif kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise BadRequest("response_format.json_schema.schema must be the JSON Schema of an object for "
                             "Anthropic models (the answer comes as a tool's input, which is an object)",
                             param="response_format.json_schema.schema")
        if isinstance(spec, dict) and isinstance(spec.get("description"), str) and spec["description"]:
            about += " " + spec["description"]
    else:
        raise BadRequest("response_format.type must be text, json_object or json_schema", param="response_format")
    return {"name": ANSWER_TOOL, "description": about, "input_schema": schema}


def _system(messages: list[tuple[JSON, str]]) -> str | list[JSON] | None:
    """System and developer messages as Anthropic's ``system``: one string (each message's parts joined, messages
    apart), or text blocks when a part carries a ``cache_control`` marker (which must stay on its block)."""
    texts = [m.text_of(message.get("content"), f"{param}.content") for message, param in messages]
    marked = any(isinstance(message.get("content"), list) and any(
        isinstance(p, dict) and MARKER in p for p in message["content"]) for message, _ in messages)
    if not marked:
        return "\n\n".join(t for t in texts if t) or None
    blocks: list[JSON] = []
    for message, param in messages:
        content = message.get("content")
        for j, part in enumerate(m.parts_of(content, f"{param}.content")):
            text = part.get("text")
            if isinstance(text, str) and text:
                blocks.append(_marked({"type": "text", "text": text}, part, f"{param}.content[{j}]"))
    return blocks


def _continues_tool_call(turns: list[JSON]) -> bool:
    """Whether the last turn answers a tool call (a user turn of tool results)."""
    last = turns[-1]
    return last["role"] == "user" and isinstance(last["content"], list) and any(
        b.get("type") == "tool_result" for b in last["content"])


def _thinking(body: JSON, out: JSON, turns: list[JSON], client_max: int | None) -> None:
    """``reasoning_effort`` as ``thinking`` (see the module doc for when it stays off)."""
    effort = effort_of(body)
    if effort is None or effort == "none" or "thinking" in out:
        return
    choice = out.get("tool_choice")
    if (isinstance(choice, dict) and choice.get("type") in ("any", "tool")) or _continues_tool_call(turns):
        return
    budget = THINKING_BUDGETS[effort]
    if client_max is not None:
        budget = min(budget, client_max - 1)
        if budget < MIN_THINKING_BUDGET:
            return  # too little room to think: answered without
    else:
        out["max_tokens"] = budget + out["max_tokens"]  # the default answer length on top of the thinking
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    out.pop("temperature", None)
    out.pop("top_k", None)
    top_p = out.get("top_p")
    if isinstance(top_p, int | float) and top_p < MIN_THINKING_TOP_P:
        del out["top_p"]


def _refuse_logprobs(body: JSON) -> None:
    for name in ("logprobs", "top_logprobs"):
        if body.get(name) not in (None, False, 0):
            raise BadRequest(f"'{name}' is not supported for Anthropic models (they return no token "
                             "probabilities)", param=name)


def to_anthropic(body: JSON, model: str) -> JSON:
    n = body.get("n")
    if n is not None and n != 1:
        raise BadRequest("n > 1 is not supported for Anthropic models: send one request per completion",
                         param="n")
    _refuse_logprobs(body)
    system: list[tuple[JSON, str]] = []
    turns: list[JSON] = []
    for i, message in enumerate(m.messages_of(body)):
        role = message["role"]
        param = f"messages[{i}]"
        if role in ("system", "developer"):
            system.append((message, param))
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

    out: JSON = {"model": model, "messages": turns}
    system_out = _system(system)
    if system_out is not None:
        out["system"] = system_out
    client_max = m.max_tokens_of(body)
    out["max_tokens"] = client_max or default_max_tokens(model)
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
    answer = _answer_tool(body)
    if tools or answer is not None:
        raw_tools = body.get("tools") or []
        out["tools"] = [
            _marked({
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "input_schema": t.parameters or {"type": "object", "properties": {}},
            }, raw_tools[i], f"tools[{i}]")
            for i, t in enumerate(tools)
        ]
        if answer is not None:
            if any(t.name == ANSWER_TOOL for t in tools):
                raise BadRequest(f"the tool name '{ANSWER_TOOL}' is reserved by Webrana", param="tools")
            out["tools"].append(answer)
    choice = _tool_choice(body, bool(tools), answer is not None)
    if choice is not None:
        out["tool_choice"] = choice
    _thinking(body, out, turns, client_max)
    _compact(turns)
    if body.get("stream") is True:
        out["stream"] = True
    return out
