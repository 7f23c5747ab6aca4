"""``picloud.testing``: a pytest plugin that gives an app's test suite a real PiCloud.

Enable it with ``-p picloud.testing`` (or ``pytest_plugins = ["picloud.testing"]`` in the
top-level conftest.py); it is also registered under that name as a ``pytest11`` entry
point, so pytest loads it on its own unless plugin autoloading is switched off. Its
fixtures do nothing until a test asks for them:

- ``picloud_db``: an autocommit psycopg connection to a fresh, migrated database of the
  test's own (cloned from a template migrated once per session) on the embedded
  PostgreSQL, or on the server at ``PICLOUD_TEST_DATABASE_URL``; ``picloud_database`` is
  its URL.
- ``picloud_server``: a real ``picloud serve`` on a free loopback port on that database,
  with an instance admin key (``.url``, ``.admin_key``; ``kill()``/``start()``).
- ``picloud_app``: an app on that server with a domain, an app-admin key and
  ``picloud_client`` clients bound to it (needs the ``picloud-client`` package).

and SQL assertion helpers: ``assert_published``, ``messages_for``, ``deliveries_for``,
``wait_for_delivery``.
"""

from __future__ import annotations

from picloud.testing.app import PiCloudApp, picloud_app
from picloud.testing.asserts import (
    app_id_of,
    assert_published,
    deliveries_for,
    messages_for,
    wait_for_delivery,
)
from picloud.testing.db import (
    PgServer,
    make_app,
    picloud_database,
    picloud_db,
    picloud_pg,
    picloud_template_db,
)
from picloud.testing.server import (
    ADMIN_KEY,
    PiCloudServer,
    free_port,
    picloud_server,
    picloud_server_env,
)

__all__ = [
    "ADMIN_KEY",
    "PgServer",
    "PiCloudApp",
    "PiCloudServer",
    "app_id_of",
    "assert_published",
    "deliveries_for",
    "free_port",
    "make_app",
    "messages_for",
    "picloud_app",
    "picloud_database",
    "picloud_db",
    "picloud_pg",
    "picloud_server",
    "picloud_server_env",
    "picloud_template_db",
    "wait_for_delivery",
]
