"""Aliases through the console's pages: add (errors next to the field), use, change, delete; CSRF on every form."""

from __future__ import annotations

import re

from tests.dashboard.conftest import Console, Stack
from tests.dashboard.flows import chat, user_with_keys


async def test_add_use_change_and_delete_an_alias(console: Console, stack: Stack) -> None:
    key = await user_with_keys(console, "alias@example.co.id")
    html = await console.get("/aliases")
    assert "Belum ada alias" in html and 'href="/aliases"' in html
    resp = await console.post("/aliases", {"name": "fast", "hop0_model": "gpt-4o-mini"})
    assert resp.status == 422 and 'id="name-error"' in await resp.text()
    resp = await console.post("/aliases", {"name": "wbr/fast", "hop0_model": "gpt-4o-mini",
                                           "hop1_model": "llama-3"})
    assert resp.status == 422 and 'id="hop1_model-error"' in await resp.text()
    resp = await console.post("/aliases", {"name": "wbr/fast", "hop0_model": "gpt-4o-mini",
                                           "hop0_max_tokens": "lots"})
    assert resp.status == 422 and 'id="hop0_max_tokens-error"' in await resp.text()
    resp = await console.post("/aliases", {"name": "wbr/fast", "hop0_model": "qwen-plus", "hop0_timeout": "5",
                                           "hop2_model": "gpt-4o-mini", "hop2_max_tokens": "64"})
    assert resp.status == 303 and resp.headers["Location"] == "/aliases"
    html = await console.get("/aliases")
    assert "Alias wbr/fast disimpan" in html
    assert re.search(r"<code>qwen-plus</code> &rarr; <code>gpt-4o-mini</code>", html)
    (answer,) = await chat(stack, key, model="wbr/fast")  # no Qwen key: the OpenAI hop answers
    assert answer.choices[0].message.content.startswith("echo:")
    alias_id = re.search(r'href="/aliases/([0-9a-f-]{36})/edit"', html)
    assert alias_id
    edit = await console.get(f"/aliases/{alias_id.group(1)}/edit")
    assert 'value="wbr/fast"' in edit and 'id="hop0_timeout" name="hop0_timeout" value="5"' in edit
    assert 'id="hop1_max_tokens" name="hop1_max_tokens" value="64"' in edit  # the empty row was left out
    resp = await console.post(f"/aliases/{alias_id.group(1)}", {"name": "wbr/fast", "hop0_model": "gpt-4o-mini"},
                              csrf=False)
    assert resp.status == 403  # no CSRF token: refused
    resp = await console.post(f"/aliases/{alias_id.group(1)}", {"name": "wbr/cepat", "hop0_model": "gpt-4o-mini"})
    assert resp.status == 303
    html = await console.get("/aliases")
    assert "wbr/cepat" in html and "qwen-plus" not in html
    await console.post("/lang", {"lang": "en", "next": "/aliases"})
    resp = await console.post(f"/aliases/{alias_id.group(1)}/delete")
    assert resp.status == 303
    html = await console.get("/aliases")
    assert "Alias deleted." in html and "No aliases yet." in html
    await console.get("/aliases/00000000-0000-0000-0000-000000000000/edit", status=404)
