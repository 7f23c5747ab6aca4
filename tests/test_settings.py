"""Settings: defaults, parsing, and a clear error naming the variable for bad values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from picloud.settings import ROLES, SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings({})
    assert (s.listen_host, s.listen_port) == ("127.0.0.1", 8080)
    assert s.database_url is None and s.data_dir == Path(".picloud")
    assert s.files_root == Path(".picloud/files")
    assert s.realtime_heartbeat_sec == 30 and s.realtime_broadcast_capacity == 64
    assert s.presence_timeout_sec == 30
    assert load_settings({"PICLOUD_PRESENCE_TIMEOUT_SEC": "2.5"}).presence_timeout_sec == 2.5
    assert s.realtime_retention_sec == 86400 and s.max_message_bytes == 65536
    assert s.cron_tick_interval_ms == 30000 and s.dispatch_lease_sec == 30
    assert s.files_orphan_sweep_interval_sec == 21600 and s.files_orphan_tmp_ttl_sec == 3600
    assert s.sql_handler_schemas == ("picloud_handlers",) and s.roles == frozenset(ROLES)
    assert s.max_batch_messages == 1000 and s.token_publish_rate == 20.0
    assert s.db_acquire_timeout_ms == 2000
    assert (s.realtime_socket_sndbuf, s.realtime_max_pending_bytes) == (65536, 1048576)


def test_values_are_parsed() -> None:
    s = load_settings(
        {
            "PICLOUD_LISTEN": "0.0.0.0:9000",
            "PICLOUD_DATA_DIR": "/srv/pc",
            "PICLOUD_BASE_DOMAIN": "Apps.Example.COM",
            "PICLOUD_ROLES": "relay,dispatcher",
            "PICLOUD_SQL_HANDLER_SCHEMAS": "a, b_c",
            "DATABASE_URL": "postgresql://u@h/db",
        }
    )
    assert (s.listen_host, s.listen_port) == ("0.0.0.0", 9000)
    assert s.files_root == Path("/srv/pc/files") and s.base_domain == "apps.example.com"
    assert s.roles == {"relay", "dispatcher"} and s.sql_handler_schemas == ("a", "b_c")
    assert load_settings({"PICLOUD_ROLES": "none"}).roles == frozenset()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PICLOUD_LISTEN", "8080"),
        ("PICLOUD_LISTEN", "host:99999"),
        ("PICLOUD_REALTIME_HEARTBEAT_SEC", "0"),
        ("PICLOUD_REALTIME_HEARTBEAT_SEC", "soon"),
        ("PICLOUD_REALTIME_BROADCAST_CAPACITY", "-1"),
        ("PICLOUD_PRESENCE_TIMEOUT_SEC", "0"),
        ("PICLOUD_PRESENCE_TIMEOUT_SEC", "0.5"),
        ("PICLOUD_PRESENCE_TIMEOUT_SEC", "86401"),
        ("PICLOUD_PRESENCE_TIMEOUT_SEC", "nan"),
        ("PICLOUD_PRESENCE_TIMEOUT_SEC", "half a minute"),
        ("PICLOUD_REALTIME_SOCKET_SNDBUF", "1024"),
        ("PICLOUD_REALTIME_SOCKET_SNDBUF", "big"),
        ("PICLOUD_REALTIME_MAX_PENDING_BYTES", "0"),
        ("PICLOUD_DB_ACQUIRE_TIMEOUT_MS", "0"),
        ("PICLOUD_DB_ACQUIRE_TIMEOUT_MS", "2s"),
        ("PICLOUD_MAX_MESSAGE_BYTES", "1.5"),
        ("PICLOUD_MAX_BATCH_MESSAGES", "0"),
        ("PICLOUD_MAX_BATCH_MESSAGES", "many"),
        ("PICLOUD_MAX_BATCH_MESSAGES", "99999999999"),
        ("PICLOUD_TOKEN_PUBLISH_RATE", "0"),
        ("PICLOUD_TOKEN_PUBLISH_RATE", "-2"),
        ("PICLOUD_TOKEN_PUBLISH_RATE", "nan"),
        ("PICLOUD_CRON_TICK_INTERVAL_MS", "abc"),
        ("PICLOUD_DISPATCH_LEASE_SEC", "0"),
        ("PICLOUD_ROLES", "relay,bogus"),
        ("PICLOUD_SQL_HANDLER_SCHEMAS", "bad-name"),
        ("PICLOUD_BASE_DOMAIN", "a b"),
        ("DATABASE_URL", "mysql://x"),
        ("PICLOUD_FILES_ORPHAN_TMP_TTL_SEC", "inf"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_bad_setting_stops_start_up_with_a_message(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "picloud", "serve"],
        env={"PICLOUD_LISTEN": "nowhere", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "PICLOUD_LISTEN" in proc.stderr and "Traceback" not in proc.stderr
