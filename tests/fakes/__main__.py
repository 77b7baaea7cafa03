"""``python -m tests.fakes --port P [--workers N] [--chunk-delay S]``: see ``tests.fakes.cli``."""

from tests.fakes.cli import main

main()
