"""The databases the scaling benchmarks measure on: ``durable``, a throwaway PostgreSQL 15
cluster with default durability (fsync, synchronous_commit and full_page_writes on, a
data directory on disk), and ``embedded``, the PostgreSQL ``picloud serve`` starts itself.
Each yields a conninfo and removes its data afterwards."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path


@contextlib.contextmanager
def durable_cluster(base: Path) -> Iterator[str]:
    from tests.pg_cluster import pg15_cluster

    # Enough connections for the largest point of either benchmark.
    with pg15_cluster(base=base, settings={"max_connections": "120"}) as conninfo:
        yield conninfo


@contextlib.contextmanager
def embedded_cluster(base: Path) -> Iterator[str]:
    from picloud.embedded import embedded_postgres

    with (
        tempfile.TemporaryDirectory(prefix="picloud-bench-emb-", dir=base) as tmp,
        embedded_postgres(Path(tmp), cleanup_mode="delete") as uri,
    ):
        yield uri


TARGETS: dict[str, Callable[[Path], AbstractContextManager[str]]] = {
    "durable": durable_cluster,
    "embedded": embedded_cluster,
}
