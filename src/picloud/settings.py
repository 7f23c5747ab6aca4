"""Settings from the environment, parsed and validated in one place.

A bad value raises SettingsError naming the variable, and start-up stops there.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

ROLES = ("relay", "dispatcher", "cron", "gc", "sweeper")
ADMIN_KEY_MIN_CHARS = 32

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


class SettingsError(ValueError):
    """A setting has a value PiCloud cannot use."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    db_connect_timeout_sec: float = 10.0
    log_format: str = "text"
    db_acquire_timeout_ms: int = 2000
    data_dir: Path = Path(".picloud")
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    admin_key: str | None = None
    metrics_token: str | None = None
    base_domain: str = "localhost"
    http_body_timeout_sec: float = 30.0
    trusted_proxies: Networks = ()
    realtime_max_subscribers_per_app: int = 10000
    realtime_max_subscribers_per_client: int = 256
    realtime_max_topics_per_stream: int = 32
    webhook_allowed_networks: Networks = ()
    realtime_heartbeat_sec: float = 30.0
    presence_timeout_sec: float = 30.0
    realtime_broadcast_capacity: int = 64
    realtime_socket_sndbuf: int = 64 * 1024
    realtime_max_pending_bytes: int = 1024 * 1024
    realtime_retention_sec: int = 86400
    max_message_bytes: int = 65536
    max_batch_messages: int = 1000
    token_publish_rate: float = 20.0
    max_file_bytes: int = 64 * 1024 * 1024
    cron_tick_interval_ms: int = 30000
    files_root: Path = Path(".picloud/files")
    files_orphan_sweep_interval_sec: float = 21600.0
    files_orphan_tmp_ttl_sec: float = 3600.0
    dispatch_lease_sec: int = 30
    dispatch_concurrency: int = 32
    dispatch_poll_ms: int = 1000
    dispatch_backoff_base_ms: int = 1000
    dispatch_backoff_cap_ms: int = 3600000
    dispatch_retention_sec: int = 7 * 86400
    sql_handler_schemas: tuple[str, ...] = ("picloud_handlers",)
    roles: frozenset[str] = field(default_factory=lambda: frozenset(ROLES))
    migrate_on_start: bool = True

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _get(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T, what: str) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"{name}={raw!r}: expected {what}") from exc


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError(raw)
    return value


def _presence_timeout(raw: str) -> float:
    value = float(raw)
    if not 1 <= value <= 86400:
        raise ValueError(raw)
    return value


def _sndbuf(raw: str) -> int:
    value = int(raw)
    if not 4096 <= value <= 16 * 1024 * 1024:
        raise ValueError(raw)
    return value


def _listen(raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        raise ValueError(raw)
    port_no = int(port)
    if not 0 <= port_no <= 65535:
        raise ValueError(raw)
    return host.strip("[]"), port_no


def _batch_size(raw: str) -> int:
    # Read by SQL as an integer on every publish: bounded well inside its range.
    value = _positive_int(raw)
    if value > 1_000_000:
        raise ValueError(raw)
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def _identifier_list(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names or not all(n.replace("_", "a").isalnum() and not n[0].isdigit() for n in names):
        raise ValueError(raw)
    return names


def parse_roles(raw: str) -> frozenset[str]:
    if raw.lower() == "none":
        return frozenset()
    names = frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
    if not names <= set(ROLES):
        raise ValueError(raw)
    return names


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _domain(raw: str) -> str:
    value = raw.lower().strip(".")
    if not value or any(c.isspace() or c in "/:@" for c in value):
        raise ValueError(raw)
    return value


def _networks(raw: str) -> Networks:
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip()
    )


def _admin_key(env: Mapping[str, str]) -> str | None:
    # The value itself never goes into the message: it is a secret.
    raw = env.get("PICLOUD_ADMIN_KEY")
    if raw is None or raw.strip() == "":
        return None
    if len(raw.strip()) < ADMIN_KEY_MIN_CHARS:
        raise SettingsError(
            f"PICLOUD_ADMIN_KEY: expected a key of at least {ADMIN_KEY_MIN_CHARS} characters"
            f" (this one has {len(raw.strip())})"
        )
    return raw.strip()


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError(raw)
    return value


def _log_format(raw: str) -> str:
    if raw.lower() not in ("text", "json"):
        raise ValueError(raw)
    return raw.lower()


def _database_url(raw: str) -> str:
    if not raw.startswith(("postgres://", "postgresql://")) and "=" not in raw:
        raise ValueError(raw)
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read every PICLOUD_* setting (and DATABASE_URL) from ``env`` (default: os.environ)."""
    env = os.environ if env is None else env
    data_dir = _get(env, "PICLOUD_DATA_DIR", Path, Path(".picloud"), "a directory path")
    host, port = _get(env, "PICLOUD_LISTEN", _listen, ("127.0.0.1", 8080), "HOST:PORT")
    return Settings(
        database_url=_get(env, "DATABASE_URL", _database_url, None, "a postgresql:// URL"),
        db_connect_timeout_sec=_get(
            env, "PICLOUD_DB_CONNECT_TIMEOUT_SEC", _non_negative_float, 10.0, "a number >= 0"
        ),
        log_format=_get(env, "PICLOUD_LOG_FORMAT", _log_format, "text", "text or json"),
        db_acquire_timeout_ms=_get(
            env, "PICLOUD_DB_ACQUIRE_TIMEOUT_MS", _positive_int, 2000, "a positive integer"
        ),
        data_dir=data_dir,
        listen_host=host,
        listen_port=port,
        admin_key=_admin_key(env),
        metrics_token=_get(env, "PICLOUD_METRICS_TOKEN", str, None, "a token"),
        base_domain=_get(env, "PICLOUD_BASE_DOMAIN", _domain, "localhost", "a domain name"),
        http_body_timeout_sec=_get(
            env, "PICLOUD_HTTP_BODY_TIMEOUT_SEC", _positive_float, 30.0, "a positive number"
        ),
        trusted_proxies=_get(
            env, "PICLOUD_TRUSTED_PROXIES", _networks, (), "a comma-separated list of CIDRs"
        ),
        realtime_max_subscribers_per_app=_get(
            env,
            "PICLOUD_REALTIME_MAX_SUBSCRIBERS_PER_APP",
            _positive_int,
            10000,
            "a positive integer",
        ),
        realtime_max_subscribers_per_client=_get(
            env,
            "PICLOUD_REALTIME_MAX_SUBSCRIBERS_PER_CLIENT",
            _positive_int,
            256,
            "a positive integer",
        ),
        realtime_max_topics_per_stream=_get(
            env,
            "PICLOUD_REALTIME_MAX_TOPICS_PER_STREAM",
            _positive_int,
            32,
            "a positive integer",
        ),
        webhook_allowed_networks=_get(
            env,
            "PICLOUD_WEBHOOK_ALLOWED_NETWORKS",
            _networks,
            (),
            "a comma-separated list of CIDRs",
        ),
        realtime_heartbeat_sec=_get(
            env, "PICLOUD_REALTIME_HEARTBEAT_SEC", _positive_float, 30.0, "a positive number"
        ),
        presence_timeout_sec=_get(
            env,
            "PICLOUD_PRESENCE_TIMEOUT_SEC",
            _presence_timeout,
            30.0,
            "a number of seconds from 1 to 86400",
        ),
        realtime_broadcast_capacity=_get(
            env, "PICLOUD_REALTIME_BROADCAST_CAPACITY", _positive_int, 64, "a positive integer"
        ),
        realtime_socket_sndbuf=_get(
            env, "PICLOUD_REALTIME_SOCKET_SNDBUF", _sndbuf, 64 * 1024, "bytes, 4096 to 16777216"
        ),
        realtime_max_pending_bytes=_get(
            env,
            "PICLOUD_REALTIME_MAX_PENDING_BYTES",
            _positive_int,
            1024 * 1024,
            "a positive integer",
        ),
        realtime_retention_sec=_get(
            env, "PICLOUD_REALTIME_RETENTION_SEC", _positive_int, 86400, "a positive integer"
        ),
        max_message_bytes=_get(
            env, "PICLOUD_MAX_MESSAGE_BYTES", _positive_int, 65536, "a positive integer"
        ),
        max_batch_messages=_get(
            env, "PICLOUD_MAX_BATCH_MESSAGES", _batch_size, 1000, "an integer from 1 to 1000000"
        ),
        token_publish_rate=_get(
            env, "PICLOUD_TOKEN_PUBLISH_RATE", _positive_float, 20.0, "a positive number"
        ),
        max_file_bytes=_get(
            env, "PICLOUD_MAX_FILE_BYTES", _positive_int, 64 * 1024 * 1024, "a positive integer"
        ),
        cron_tick_interval_ms=_get(
            env, "PICLOUD_CRON_TICK_INTERVAL_MS", _positive_int, 30000, "a positive integer"
        ),
        files_root=_get(env, "PICLOUD_FILES_ROOT", Path, data_dir / "files", "a directory path"),
        files_orphan_sweep_interval_sec=_get(
            env,
            "PICLOUD_FILES_ORPHAN_SWEEP_INTERVAL_SEC",
            _positive_float,
            21600.0,
            "a positive number",
        ),
        files_orphan_tmp_ttl_sec=_get(
            env, "PICLOUD_FILES_ORPHAN_TMP_TTL_SEC", _positive_float, 3600.0, "a positive number"
        ),
        dispatch_lease_sec=_get(
            env, "PICLOUD_DISPATCH_LEASE_SEC", _positive_int, 30, "a positive integer"
        ),
        dispatch_concurrency=_get(
            env, "PICLOUD_DISPATCH_CONCURRENCY", _positive_int, 32, "a positive integer"
        ),
        dispatch_poll_ms=_get(
            env, "PICLOUD_DISPATCH_POLL_MS", _positive_int, 1000, "a positive integer"
        ),
        dispatch_backoff_base_ms=_get(
            env, "PICLOUD_DISPATCH_BACKOFF_BASE_MS", _non_negative_int, 1000, "an integer >= 0"
        ),
        dispatch_backoff_cap_ms=_get(
            env, "PICLOUD_DISPATCH_BACKOFF_CAP_MS", _non_negative_int, 3600000, "an integer >= 0"
        ),
        dispatch_retention_sec=_get(
            env, "PICLOUD_DISPATCH_RETENTION_SEC", _positive_int, 7 * 86400, "a positive integer"
        ),
        sql_handler_schemas=_get(
            env,
            "PICLOUD_SQL_HANDLER_SCHEMAS",
            _identifier_list,
            ("picloud_handlers",),
            "a comma-separated list of schema names",
        ),
        roles=_get(
            env,
            "PICLOUD_ROLES",
            parse_roles,
            frozenset(ROLES),
            f"a comma-separated subset of {', '.join(ROLES)}, or none",
        ),
        migrate_on_start=_get(env, "PICLOUD_MIGRATE", _bool, True, "true or false"),
    )
