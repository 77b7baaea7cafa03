"""Webrana proxy: the OpenAI-compatible gateway (/v1) and the management API (/api)."""

__version__ = "0.1.0"
