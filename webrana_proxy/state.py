"""Typed application state: every shared object lives on the ``web.Application`` under one of these keys."""

from __future__ import annotations

import aiohttp
import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from webrana_proxy.breakers import CircuitBoard
from webrana_proxy.crypto import Keyring
from webrana_proxy.keycache import KeyCache
from webrana_proxy.limits import Limiter
from webrana_proxy.metrics import Metrics
from webrana_proxy.passwords import Passwords
from webrana_proxy.providers.pricebook import PriceBook
from webrana_proxy.providers.registry import Registry
from webrana_proxy.settings import Settings
from webrana_proxy.tokens import TokenIssuer
from webrana_proxy.upstreamhttp import UpstreamPool
from webrana_proxy.usage import UsageWriter

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
KEYRING = web.AppKey("keyring", Keyring)
PASSWORDS = web.AppKey("passwords", Passwords)
TOKENS = web.AppKey("tokens", TokenIssuer)
LIMITER = web.AppKey("limiter", Limiter)
HTTP = web.AppKey("http", aiohttp.ClientSession)  # off the hot path: key tests
UPSTREAM = web.AppKey("upstream", UpstreamPool)  # the gateway's calls to providers
KEYCACHE = web.AppKey("keycache", KeyCache)
REGISTRY = web.AppKey("registry", Registry)
USAGE = web.AppKey("usage", UsageWriter)
METRICS = web.AppKey("metrics", Metrics)
PRICES = web.AppKey("prices", PriceBook)  # catalogue + admins' overrides: what each call costs
BREAKERS = web.AppKey("breakers", CircuitBoard)  # per provider key, in-process (gateway/upstream.py)
