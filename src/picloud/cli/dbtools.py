"""``picloud db-url`` and ``picloud psql``: the database PiCloud uses, for psql and friends."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from picloud.cli.common import CommandError, Sub, database, leaf
from picloud.embedded import embedded_postgres
from picloud.settings import load_settings
from picloud.startup import wait_for_database


def _db_url(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.database_url:
        with database(settings):  # (reachable, or exit 2)
            print(settings.database_url)
        return 0
    # The embedded server is left running, so the printed URL stays valid after we exit
    # (the next `picloud serve` attaches to it).
    with embedded_postgres(settings.data_dir, cleanup_mode=None) as url:  # type: ignore[arg-type]
        wait_for_database(url, settings)
        print(url)
    print("picloud: the embedded PostgreSQL keeps running for this URL", file=sys.stderr)
    return 0


def _psql(args: argparse.Namespace) -> int:
    psql = shutil.which("psql")
    if psql is None:
        raise CommandError(
            "psql is not installed (Debian: apt-get install postgresql-client); "
            "`picloud db-url` prints the URL for another client"
        )
    extra = list(args.psql_args)
    # The embedded database stays up while psql runs (this process holds it).
    with database() as url:
        return subprocess.call([psql, url, *extra])


def register(sub: Sub) -> None:
    leaf(
        sub,
        "db-url",
        "print the URL of the database (the embedded one is started if needed)",
    ).set_defaults(func=_db_url)
    sub.add_parser(
        "psql",
        help="run psql against PiCloud's database (the embedded one is started if needed); "
        "every argument after `psql` goes to psql: picloud psql -c 'select 1'",
        add_help=False,
    ).set_defaults(func=_psql)
