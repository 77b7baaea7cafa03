"""Webrana's web console: its own aiohttp process that reads and writes only through the proxy's ``/api``."""
