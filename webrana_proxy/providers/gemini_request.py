"""OpenAI chat request -> Gemini ``generateContent`` request (protocols.md section 5). Pure ``dict -> dict``.

What each parameter becomes is the conformance table (``conformance.py``, rendered into docs/parameters.md).
Lossy by design (documented, not faked): ``logit_bias``, ``parallel_tool_calls``, ``user`` and ``cache_control``
markers have no Gemini equivalent and are dropped (Gemini caches implicitly and reports
``cachedContentTokenCount``); ``logprobs`` is refused with a 400. Images must be ``data:`` URLs (sent as
``inlineData``) or Gemini Files API URIs (sent as ``fileData``): Gemini fetches no other URL and Webrana never
fetches one, so any other image URL is a 400 naming the field. Tool-call ids are not sent (Gemini has none):
results are matched to calls by name, looked up from the earlier assistant message's ``tool_calls``.
"""

from __future__ import annotations

import re
from typing import Any

from webrana_proxy.errors import BadRequest
from webrana_proxy.providers import messages as m
from webrana_proxy.providers.base import JSON
from webrana_proxy.providers.reasoning import effort_of

_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
# OpenAI's ``reasoning_effort`` -> Gemini's ``thinkingConfig.thinkingBudget`` (tokens): 2.5 Flash accepts 0..24,576
# (0: no thinking).
THINKING_BUDGETS = {"none": 0, "minimal": 0, "low": 1_024, "medium": 8_192, "high": 24_576, "xhigh": 24_576}
# The files Gemini can read by URI: its own Files API's (``fileData``); it fetches no other URL.
FILES_URI = re.compile(r"https://generativelanguage\.googleapis\.com/v1(beta)?/files/[A-Za-z0-9_-]+")


def _user_parts(content: Any, param: str) -> list[JSON]:
    parts: list[JSON] = []
    for j, part in enumerate(m.parts_of(content, param)):
        kind = part["type"]
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise BadRequest(f"{param}[{j}].text must be a string", param=param)
            if text:
                parts.append({"text": text})
        elif kind == "image_url":
            url = m.image_url_of(part, f"{param}[{j}]")
            data_url = m.parse_data_url(url)
            if data_url is not None:
                parts.append({"inlineData": {"mimeType": data_url[0], "data": data_url[1]}})
            elif FILES_URI.fullmatch(url):
                parts.append({"fileData": {"fileUri": url}})
            else:
                field = f"{param}[{j}].image_url"
                raise BadRequest(f"{field}: Gemini models take images as base64 data: URLs or Gemini Files API "
                                 "URIs; they cannot fetch other URLs, and Webrana does not fetch them either. "
                                 "Send the image as data:<mime>;base64,<data>", param=field)
        else:
            raise BadRequest(f"{param}[{j}]: content type '{kind}' is not supported for Gemini models",
                             param=param)
    return parts


def _assistant_parts(message: JSON, param: str, names: dict[str, str]) -> list[JSON]:
    parts: list[JSON] = []
    for j, part in enumerate(m.parts_of(message.get("content"), f"{param}.content")):
        text = part.get("text") if part["type"] == "text" else part.get("refusal")
        if part["type"] not in ("text", "refusal") or not isinstance(text, str):
            raise BadRequest(f"{param}.content[{j}]: assistant content must be text", param=param)
        if text:
            parts.append({"text": text})
    for call_id, name, arguments in m.tool_calls_of(message, param):
        names[call_id] = name
        parts.append({"functionCall": {"name": name, "args": arguments}})
    return parts


def _function_response(message: JSON, param: str, names: dict[str, str]) -> JSON:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"{param}.tool_call_id is required on tool messages", param=param)
    name = names.get(call_id)
    if name is None:
        raise BadRequest(f"{param}: tool_call_id '{call_id}' does not match a tool call of an earlier "
                         "assistant message", param=f"{param}.tool_call_id")
    result = m.text_of(message.get("content"), f"{param}.content")
    return {"functionResponse": {"name": name, "response": {"result": result}}}


def _append(contents: list[JSON], role: str, parts: list[JSON]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _generation_config(body: JSON) -> JSON:
    config: JSON = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"),
                         ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        value = m.number_of(body, ours)
        if value is not None:
            config[theirs] = value
    top_k = m.int_of(body, "top_k")
    if top_k is not None:
        config["topK"] = top_k
    seed = body.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        config["seed"] = seed
    max_tokens = m.max_tokens_of(body)
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = m.stop_of(body)
    if stop:
        config["stopSequences"] = stop
    n = m.int_of(body, "n")
    if n is not None and n != 1:
        config["candidateCount"] = n
    effort = effort_of(body)
    if effort is not None:
        config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort]}
    for name in ("logprobs", "top_logprobs"):
        if body.get(name) not in (None, False, 0):
            raise BadRequest(f"'{name}' is not supported for Gemini models through Webrana", param=name)
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind == "json_schema":
            config["responseMimeType"] = "application/json"
            schema = fmt.get("json_schema")
            if isinstance(schema, dict) and isinstance(schema.get("schema"), dict):
                config["responseJsonSchema"] = schema["schema"]
        elif kind not in (None, "text"):
            raise BadRequest("response_format.type must be text, json_object or json_schema",
                             param="response_format")
    return config


def to_gemini(body: JSON) -> JSON:
    system: list[JSON] = []
    contents: list[JSON] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, from earlier assistant messages
    for i, message in enumerate(m.messages_of(body)):
        role = message["role"]
        param = f"messages[{i}]"
        if role in ("system", "developer"):
            text = m.text_of(message.get("content"), f"{param}.content")
            if text:
                system.append({"text": text})
        elif role == "user":
            _append(contents, "user", _user_parts(message.get("content"), f"{param}.content"))
        elif role == "assistant":
            _append(contents, "model", _assistant_parts(message, param, names))
        elif role == "tool":
            _append(contents, "user", [_function_response(message, param, names)])
        else:
            raise BadRequest(f"{param}: unknown role '{role}'", param=param)
    if not contents:
        raise BadRequest("at least one user or assistant message is required", param="messages")

    out: JSON = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    tools = m.tools_of(body)
    if tools:
        out["tools"] = [{"functionDeclarations": [
            {
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                **({"parametersJsonSchema": t.parameters} if t.parameters else {}),
            }
            for t in tools
        ]}]
    choice = m.tool_choice_of(body)
    if choice is not None and tools:
        if choice[0] == "function":
            calling: JSON = {"mode": "ANY", "allowedFunctionNames": [choice[1]]}
        else:
            calling = {"mode": _MODES[choice[0]]}
        out["toolConfig"] = {"functionCallingConfig": calling}
    return out
