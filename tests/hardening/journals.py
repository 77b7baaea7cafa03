"""Reading usage journals from the outside, as a replaying process would."""

from __future__ import annotations

from pathlib import Path

from webrana_proxy.usage import records_of
from webrana_proxy.usage_journal import segment_bytes


def journal_rows(folder: Path, owner: str = "*") -> int:
    """Rows in the segments of the journals in ``folder`` (``owner``: a pid, for one process's journals)."""
    return sum(len(records_of(line)) for p in folder.glob(f"journal-{owner}-*/*.jsonl")
               for line in segment_bytes(p.read_bytes()).splitlines())
