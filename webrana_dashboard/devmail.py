"""The dev mailbox: the messages `make run`'s local SMTP sink saved as ``.eml`` files (dev mode only).

Read in a worker thread (``asyncio.to_thread``), never on the event loop. Only names the sink writes
(``NAME_RE``) are ever opened, so a path from the URL cannot leave the folder.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

NAME_RE = re.compile(r"^[0-9A-Za-z_-]{1,80}\.eml$")
LINK_RE = re.compile(r"https?://[^\s<>\"']+")
LIST_MAX = 200  # newest messages listed; a dev session never needs more


@dataclass(frozen=True, slots=True)
class DevMessage:
    name: str
    subject: str
    to: str
    date: str
    text: str

    @property
    def links(self) -> list[str]:
        return LINK_RE.findall(self.text)


def _parse(path: Path) -> DevMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = ""
    if isinstance(parsed, EmailMessage):
        body = parsed.get_body(preferencelist=("plain",))
        if body is not None:
            text = str(body.get_content())
    return DevMessage(path.name, str(parsed["Subject"] or ""), str(parsed["To"] or ""), str(parsed["Date"] or ""),
                      text)


def list_messages(folder: Path) -> list[DevMessage]:
    """Newest first (the sink's names start with the time)."""
    if not folder.is_dir():
        return []
    names = sorted((p for p in folder.iterdir() if NAME_RE.match(p.name)), key=lambda p: p.name, reverse=True)
    return [_parse(p) for p in names[:LIST_MAX]]


def read_message(folder: Path, name: str) -> DevMessage | None:
    if not NAME_RE.match(name):
        return None
    path = folder / name
    return _parse(path) if path.is_file() else None
