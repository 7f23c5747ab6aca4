"""SQL level: presence (sql/34_presence.sql) — node leases, joins and leaves announced once
per subject cluster-wide, expiry of silent nodes, the view picloud.presence, token info."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import errors

from picloud.db import Row
from tests.fix_db import make_app
from tests.forgery import forged
from tests.test_sql_topics import make_topic


def presence_topic(db: psycopg.Connection[Row], app: uuid.UUID, name: str = "room") -> None:
    make_topic(db, app, name, auth_mode="public")
    db.execute(
        "UPDATE picloud.topics SET presence = true WHERE app_id = %s AND name = %s", (app, name)
    )


def beat(db: psycopg.Connection[Row], node: str, lease: str = "30 seconds") -> bool:
    row = db.execute(
        "SELECT picloud.presence_heartbeat(%s, %s::interval) AS k", (node, lease)
    ).fetchone()
    assert row is not None
    known: bool = row["k"]
    return known


def join(
    db: psycopg.Connection[Row],
    node: str,
    conns: list[tuple[int, uuid.UUID, str, str, dict[str, Any] | None]],
) -> int:
    row = db.execute(
        "SELECT picloud.presence_join(%s, %s::bigint[], %s::uuid[], %s::text[], %s::text[],"
        " %s::jsonb[]) AS n",
        (
            node,
            [c[0] for c in conns],
            [c[1] for c in conns],
            [c[2] for c in conns],
            [c[3] for c in conns],
            [None if c[4] is None else orjson.dumps(c[4]).decode() for c in conns],
        ),
    ).fetchone()
    assert row is not None
    n: int = row["n"]
    return n


def leave(db: psycopg.Connection[Row], node: str, ids: list[int]) -> int:
    row = db.execute("SELECT picloud.presence_leave(%s, %s::bigint[]) AS n", (node, ids)).fetchone()
    assert row is not None
    n: int = row["n"]
    return n


class Listener:
    """A LISTEN connection on picloud_presence; collects announcements."""

    def __init__(self, database: str) -> None:
        self.conn = psycopg.connect(database, autocommit=True)
        self.conn.execute("LISTEN picloud_presence")

    def events(self) -> list[tuple[str, str, str, Any]]:
        out = []
        for note in self.conn.notifies(timeout=0.3):
            data = orjson.loads(note.payload)
            out.append((data["topic"], data["event"], data["subject"], data["info"]))
        return out


@pytest.fixture
def listener(database: str) -> Any:
    lst = Listener(database)
    yield lst
    lst.conn.close()


def view(db: psycopg.Connection[Row], app: uuid.UUID) -> list[tuple[str, str, str]]:
    rows = db.execute(
        "SELECT topic, subject, node FROM picloud.presence WHERE app_id = %s ORDER BY 1, 2, 3",
        (app,),
    ).fetchall()
    return [(r["topic"], r["subject"], r["node"]) for r in rows]


def test_one_join_per_subject_and_one_leave_after_its_last_connection(
    db: psycopg.Connection[Row], listener: Listener
) -> None:
    app = make_app(db, "a")
    presence_topic(db, app)
    assert beat(db, "n1") is False  # a new node
    assert beat(db, "n1") is True
    assert beat(db, "n2") is False
    assert join(db, "n1", [(1, app, "room", "alice", {"name": "Alice"})]) == 1
    # A second tab on the same node, and a third on another node: no second join.
    assert join(db, "n1", [(2, app, "room", "alice", {"name": "Alice"})]) == 0
    assert join(db, "n2", [(1, app, "room", "alice", None)]) == 0
    assert join(db, "n2", [(2, app, "room", "bob", None)]) == 1
    assert listener.events() == [
        ("room", "joined", "alice", {"name": "Alice"}),
        ("room", "joined", "bob", None),
    ]
    assert view(db, app) == [
        ("room", "alice", "n1"),
        ("room", "alice", "n1"),
        ("room", "alice", "n2"),
        ("room", "bob", "n2"),
    ]
    rows = db.execute("SELECT * FROM picloud.topic_presence(%s, 'room')", (app,)).fetchall()
    assert [(r["subject"], r["info"], r["connections"]) for r in rows] == [
        ("alice", {"name": "Alice"}, 3),
        ("bob", None, 1),
    ]
    # Closing tabs one by one: one leave, after the last.
    assert leave(db, "n1", [1]) == 0
    assert leave(db, "n2", [1]) == 0
    assert listener.events() == []
    assert leave(db, "n1", [2]) == 1
    assert listener.events() == [("room", "left", "alice", {"name": "Alice"})]
    # Two tabs of a subject closing in one call: one leave.
    join(db, "n1", [(3, app, "room", "carol", None), (4, app, "room", "carol", None)])
    assert listener.events() == [("room", "joined", "carol", None)]
    assert leave(db, "n1", [3, 4, 999]) == 1
    assert listener.events() == [("room", "left", "carol", None)]
    # Joining a connection twice changes nothing.
    assert join(db, "n2", [(2, app, "room", "bob", None)]) == 0
    assert view(db, app) == [("room", "bob", "n2")]


def test_a_silent_node_stops_counting_at_its_lease_and_expiry_announces_its_leaves(
    db: psycopg.Connection[Row], listener: Listener
) -> None:
    app = make_app(db, "a")
    presence_topic(db, app)
    beat(db, "dying", "0.5 seconds")
    beat(db, "alive", "1 hour")
    join(db, "dying", [(1, app, "room", "alice", None), (2, app, "room", "bob", None)])
    join(db, "alive", [(1, app, "room", "bob", None)])
    listener.events()
    time.sleep(0.7)
    # Out of the view at once, before anyone expires it...
    assert view(db, app) == [("room", "bob", "alive")]
    # ...and expiry announces only the subject that is nowhere else.
    row = db.execute("SELECT picloud.presence_expire() AS n").fetchone()
    assert row is not None and row["n"] == 1
    assert listener.events() == [("room", "left", "alice", None)]
    assert db.execute("SELECT node_id FROM picloud.presence_nodes").fetchall() == [
        {"node_id": "alive"}
    ]
    # A stalled node that beats again after expiry is told to join everything again.
    assert beat(db, "dying") is False


def test_a_node_whose_lease_ran_out_starts_again_empty(
    db: psycopg.Connection[Row], listener: Listener
) -> None:
    app = make_app(db, "a")
    presence_topic(db, app)
    beat(db, "n1", "0.3 seconds")
    join(db, "n1", [(1, app, "room", "alice", None)])
    time.sleep(0.5)
    # Joining without a live lease is refused, not half-done.
    with pytest.raises(errors.ObjectNotInPrerequisiteState):
        join(db, "n1", [(2, app, "room", "bob", None)])
    assert beat(db, "n1") is False  # its old rows went, alice left
    assert view(db, app) == []
    assert listener.events() == [("room", "joined", "alice", None), ("room", "left", "alice", None)]
    assert join(db, "n1", [(1, app, "room", "alice", None)]) == 1


def test_only_presence_topics_are_tracked_and_apps_stay_apart(
    db: psycopg.Connection[Row], listener: Listener
) -> None:
    app, other = make_app(db, "a"), make_app(db, "b")
    presence_topic(db, app)
    presence_topic(db, other)
    make_topic(db, app, "plain", auth_mode="public")
    beat(db, "n1")
    joined = join(
        db,
        "n1",
        [
            (1, app, "room", "alice", None),
            (2, app, "plain", "alice", None),  # no presence on this topic: skipped
            (3, other, "room", "alice", None),  # the same subject name in another app
            (4, app, "missing", "alice", None),
        ],
    )
    assert joined == 2
    assert view(db, app) == [("room", "alice", "n1")]
    assert view(db, other) == [("room", "alice", "n1")]
    assert leave(db, "n1", [3]) == 1  # the other app's alice left; this app's stays
    assert view(db, app) == [("room", "alice", "n1")]
    assert view(db, other) == []
    # Deleting the topic takes its presence rows with it.
    db.execute("DELETE FROM picloud.topics WHERE app_id = %s AND name = 'room'", (app,))
    assert view(db, app) == []


def test_bad_input_is_refused_with_sqlstates(db: psycopg.Connection[Row]) -> None:
    app = make_app(db, "a")
    presence_topic(db, app)
    for node, lease in (
        ("", "1 second"),
        ("n", "0 seconds"),
        ("n", "2 days"),
        ("x" * 201, "1 second"),
    ):
        with pytest.raises(errors.InvalidParameterValue):
            beat(db, node, lease)
    beat(db, "n1")
    with pytest.raises(errors.InvalidParameterValue):
        db.execute(
            "SELECT picloud.presence_join('n1', '{1,2}', %s::uuid[], '{room}', '{a}', '{NULL}')",
            ([app],),
        )
    with pytest.raises(errors.CheckViolation):
        join(db, "n1", [(1, app, "room", "", None)])
    with pytest.raises(errors.CheckViolation):
        db.execute(
            "SELECT picloud.presence_join('n1', '{1}', %s::uuid[], '{room}', '{a}',"
            " ARRAY['[1]'::jsonb])",
            ([app],),
        )
    assert view(db, app) == []
    assert join(db, "n1", []) == 0
    assert leave(db, "n1", []) == 0


def mint(db: psycopg.Connection[Row], app: uuid.UUID, subject: str | None, info: Any) -> str:
    row = db.execute(
        "SELECT picloud.subscriber_token(%s, ARRAY['room'], '1 hour', %s, %s::jsonb) AS t",
        (app, subject, None if info is None else orjson.dumps(info).decode()),
    ).fetchone()
    assert row is not None
    token: str = row["t"]
    return token


def test_tokens_carry_info_and_presence_identity_reads_it(db: psycopg.Connection[Row]) -> None:
    app, other = make_app(db, "a"), make_app(db, "b")
    presence_topic(db, app)
    make_topic(db, app, "plain")
    presence_topic(db, other)
    info = {"name": "Ålice ☃", "colour": "#f00", "note": "a\u001eb }"}
    token = mint(db, app, "alice", info)
    claims = db.execute("SELECT * FROM picloud.subscriber_token_claims(%s)", (token,)).fetchone()
    assert claims is not None and (claims["subject"], claims["info"]) == ("alice", info)

    def identity(app_id: uuid.UUID, topic: str, tok: str | None) -> Any:
        row = db.execute(
            "SELECT picloud.presence_identity(%s, %s, %s) AS i", (app_id, topic, tok)
        ).fetchone()
        assert row is not None
        return row["i"]

    assert identity(app, "room", token) == {"subject": "alice", "info": info}
    assert identity(app, "plain", token) is None  # not a topic of the token, no presence
    assert identity(other, "room", token) is None  # another app's topic of the same name
    assert identity(app, "room", None) is None
    assert identity(app, "room", forged(token)) is None  # a forged signature
    assert identity(app, "room", mint(db, app, "bob", None)) == {"subject": "bob", "info": None}
    assert identity(app, "room", mint(db, app, None, None)) is None  # anonymous
    # Tokens without info keep their format (no separator added).
    plain = mint(db, app, "bob", None)
    row = db.execute(
        "SELECT convert_from(picloud.base64url_decode(split_part(%s, '.', 1)), 'UTF8') AS p",
        (plain,),
    ).fetchone()
    assert row is not None and row["p"].endswith(" - bob")


def test_info_must_be_a_small_object_with_a_subject(db: psycopg.Connection[Row]) -> None:
    app = make_app(db, "a")
    presence_topic(db, app)
    for subject, info in (
        ("alice", [1, 2]),
        ("alice", "text"),
        ("alice", {"x": "y" * 1100}),
        (None, {"name": "nobody"}),
    ):
        with pytest.raises(errors.InvalidParameterValue):
            mint(db, app, subject, info)
    mint(db, app, "alice", {"x": "y" * 1000})


def test_sync_renews_the_lease_then_leaves_then_joins_in_one_call(
    db: psycopg.Connection[Row], listener: Listener
) -> None:
    app = make_app(db, "a")
    presence_topic(db, app)

    def sync(leaves: list[int], joins: list[tuple[int, str]]) -> bool:
        row = db.execute(
            "SELECT picloud.presence_sync('n1', '30 seconds', %s::bigint[], %s::bigint[],"
            " %s::uuid[], %s::text[], %s::text[], %s::jsonb[]) AS k",
            (
                leaves,
                [j[0] for j in joins],
                [app] * len(joins),
                ["room"] * len(joins),
                [j[1] for j in joins],
                [None] * len(joins),
            ),
        ).fetchone()
        assert row is not None
        known: bool = row["k"]
        return known

    assert sync([], [(1, "alice")]) is False  # a new node, registered and joined at once
    assert sync([1], [(2, "alice")]) is True  # a tab replaced by another: no leave, no join
    assert listener.events() == [("room", "joined", "alice", None)]
    assert view(db, app) == [("room", "alice", "n1")]
    assert sync([2], []) is True
    assert listener.events() == [("room", "left", "alice", None)]
