"""Which error shape a route speaks: Anthropic's on ``/v1/messages*``, OpenAI's everywhere else.

The one error tree (``errors.py``) is rendered by the one middleware; this only picks the dialect by path, so
errors raised before any handler runs (an unknown sub-route, a body too large) are in the right shape too.
"""

from __future__ import annotations

from webrana_proxy.dialects import messages_response
from webrana_proxy.errors import WebranaError

MESSAGES_PREFIX = "/v1/messages"


def render(err: WebranaError, request_id: str, path: str) -> tuple[int, bytes]:
    """(status, JSON body) for ``err`` on ``path``."""
    if path.startswith(MESSAGES_PREFIX):
        return messages_response.error_body(err, request_id)
    return err.status, err.body_bytes()
