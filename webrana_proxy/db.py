"""The PostgreSQL pool (asyncpg). Every query in the project is hand-written and parameterised ($1, $2...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

from webrana_proxy.envvalues import ConfigError, mask_url

# A connection, whether held directly or borrowed from the pool: what query helpers accept.
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Conn = asyncpg.Connection

POOL_MIN = 2  # keep two warm connections for the API's first requests
POOL_MAX = 20  # PostgreSQL's default max_connections is 100; leave room for replicas
CONNECT_TIMEOUT = 10.0  # seconds before a start-up connection attempt is called failed


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads,
                                  schema="pg_catalog")


def describe_target(url: str) -> str:
    """A DATABASE_URL with its password masked, for error messages: any form (host lists, sockets) reads right."""
    return mask_url(url)


async def create_pool(database_url: str, *, min_size: int = POOL_MIN, max_size: int = POOL_MAX) -> asyncpg.Pool:
    """Open the pool, or raise ``ConfigError`` naming the host and the error."""
    try:
        pool = await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size,
                                         timeout=CONNECT_TIMEOUT, init=_init_connection,
                                         command_timeout=60)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        reason = str(exc) or type(exc).__name__
        raise ConfigError(f"cannot connect to PostgreSQL at {describe_target(database_url)}: {reason}") from None
    assert pool is not None
    return pool


def row_to_dict(row: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None
