"""``open_store(url)``: the backend named by a URL (lab.toml ``[store] url``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from ims.store.base import Store, StoreError


def open_store(url: str) -> Store:
    """``sqlite:///abs/path.db``, ``sqlite://:memory:``, ``redis://host:port/db``,
    ``unix:///path/redis.sock?db=N``."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from ims.store.sqlite import SqliteStore

        rest = url[len("sqlite://") :]
        if rest in (":memory:", "/:memory:"):
            return SqliteStore(":memory:")
        if not rest.startswith("/"):
            raise StoreError(f"sqlite store needs an absolute path: {url}")
        return SqliteStore("/" + rest.lstrip("/"))
    if scheme in ("redis", "rediss", "unix"):
        # imported here: an SQLite-only lab needs no Redis client loaded
        from ims.store.redis import RedisStore

        return RedisStore(url)
    raise StoreError(f"unknown store URL scheme {scheme!r} (sqlite, redis, unix)")
