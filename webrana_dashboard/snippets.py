"""Ready-to-paste code for pointing the OpenAI SDK at Webrana."""

from __future__ import annotations

PLACEHOLDER_KEY = "wbr_..."
EXAMPLE_MODEL = "gpt-6-luna"  # a current model (providers/pricedata/overrides.json "listed")


def python_snippet(public_api_url: str, key: str | None = None) -> str:
    return (
        "from openai import OpenAI\n"
        "\n"
        f'client = OpenAI(base_url="{public_api_url}/v1", api_key="{key or PLACEHOLDER_KEY}")\n'
        "reply = client.chat.completions.create(\n"
        f'    model="{EXAMPLE_MODEL}",\n'
        '    messages=[{"role": "user", "content": "Halo dari Jakarta!"}],\n'
        ")\n"
        "print(reply.choices[0].message.content)\n"
    )


def curl_snippet(public_api_url: str, key: str | None = None) -> str:
    return (
        f"curl {public_api_url}/v1/chat/completions \\\n"
        f'  -H "Authorization: Bearer {key or PLACEHOLDER_KEY}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f'  -d \'{{"model": "{EXAMPLE_MODEL}", "messages": [{{"role": "user", "content": "Halo!"}}]}}\'\n'
    )
