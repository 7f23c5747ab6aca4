"""SQL level: picloud.publish_group, the group commit of many publish requests in one
statement (each authorised and validated alone, one transaction, one wake-up)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from picloud.db import Row
from tests.fix_db import make_app
from tests.test_sql_publish_batch import mint
from tests.test_sql_topics import make_topic

Conn = psycopg.Connection[Row]

GROUP = (
    "SELECT i, error_state, error_message, ids, published_at"
    " FROM picloud.publish_group(%s, %s, %s, %s, %s, %s, %s, %s)"
)


@dataclass
class Req:
    topic: str
    messages: str
    single: bool = True
    key: str | None = None
    app_id: uuid.UUID | None = None
    host: str | None = None
    token: str | None = None


def group(conn: psycopg.Connection[Any], reqs: list[Req]) -> list[Row]:
    params = (
        [r.key for r in reqs],
        [r.app_id for r in reqs],
        ["topics:publish" for _ in reqs],
        [r.host for r in reqs],
        [r.token for r in reqs],
        [r.topic for r in reqs],
        [r.messages for r in reqs],
        [r.single for r in reqs],
    )
    rows = conn.execute(GROUP, params).fetchall()
    return sorted(rows, key=lambda r: r["i"])


def make_key(db: Conn, app: uuid.UUID | None, *caps: str) -> str:
    row = db.execute(
        "SELECT key FROM picloud.create_api_key(%s, 'k', %s)", (app, list(caps))
    ).fetchone()
    assert row is not None
    key: str = row["key"]
    return key


def logged(db: Conn, app: uuid.UUID, topic: str) -> list[Row]:
    return db.execute(
        "SELECT seq, message FROM picloud.messages WHERE app_id = %s AND topic = %s ORDER BY seq",
        (app, topic),
    ).fetchall()


def test_one_transaction_for_the_group_and_a_bad_request_alone_refused(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    make_topic(db, app, "u")
    key = make_key(db, app, "topics:publish")
    reqs = [
        Req("t", '{"n": 1}', key=key, app_id=app),
        Req("t", "[2, 3]", single=False, key=key, app_id=app),
        Req("t", '"bad\\u0000"', key=key, app_id=app),  # jsonb cannot hold it
        Req("t", '[4, "bad\\u0000", 5]', single=False, key=key, app_id=app),
        Req("u", '"x"', key=key, app_id=app),
        Req("t", '"' + "x" * 70000 + '"', key=key, app_id=app),
        Req("nope", "1", key=key, app_id=app),
        Req("b*d", "1", key=key, app_id=app),
        Req("t", "[]", single=False, key=key, app_id=app),
        Req("t", '{"n": 6}', key=key, app_id=app),
    ]
    rows = group(db, reqs)
    states = [r["error_state"] for r in rows]
    assert states == [None, None, "22P05", "22P05", None, "54000", "P0002", "22023", "22023", None]
    assert rows[3]["error_message"].startswith("message 1: "), rows[3]
    assert "70002 bytes" in rows[5]["error_message"]
    # Published in arrival order within a topic, ids without a gap.
    assert [r["ids"] for r in rows if r["error_state"] is None] == [[1], [2, 3], [1], [4]]
    assert all(r["published_at"] for r in rows if r["error_state"] is None)
    t = logged(db, app, "t")
    assert [(r["seq"], r["message"]) for r in t] == [(1, {"n": 1}), (2, 2), (3, 3), (4, {"n": 6})]
    assert [r["message"] for r in logged(db, app, "u")] == ["x"]


def test_the_group_is_one_transaction_of_the_caller(db: Conn, database: str) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    make_topic(db, app, "u")
    key = make_key(db, app, "topics:publish")
    reqs = [Req(t, str(n), key=key, app_id=app) for n, t in enumerate("tutu")]
    with psycopg.connect(database, row_factory=dict_row) as writer:
        group(writer, reqs)
        assert logged(db, app, "t") == [], "nothing visible before the commit"
        writer.rollback()
        assert logged(db, app, "t") == []
        group(writer, reqs)
        writer.commit()
    assert [r["message"] for r in logged(db, app, "t")] == [0, 2]
    assert [r["message"] for r in logged(db, app, "u")] == [1, 3]


def test_authorisation_is_per_request(db: Conn) -> None:
    app = make_app(db)
    other = make_app(db, "other")
    make_topic(db, app, "t")
    good = make_key(db, app, "topics:publish")
    admin = make_key(db, app, "app:admin")
    reader = make_key(db, app, "topics:manage")
    foreign = make_key(db, other, "app:admin")
    instance = make_key(db, None, "instance:admin")
    reqs = [
        Req("t", "1", key=good, app_id=app),
        Req("t", "2", key="pck_not-a-key", app_id=app),
        Req("t", "3", key=None, app_id=app),
        Req("t", "4", key=reader, app_id=app),
        Req("t", "5", key=foreign, app_id=app),
        Req("t", "6", key=good, app_id=uuid.uuid4()),
        Req("t", "7", key=admin, app_id=app),
        Req("t", "8", key=instance, app_id=app),
    ]
    states = [r["error_state"] for r in group(db, reqs)]
    assert states == [None, "28000", "28000", "42501", "42501", "P0002", None, None]
    assert [r["message"] for r in logged(db, app, "t")] == [1, 7, 8]


def test_the_key_is_checked_once_per_distinct_key(db: Conn, database: str) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    key = make_key(db, app, "topics:publish")
    admin = make_key(db, app, "app:admin")
    reqs = [
        *(Req("t", str(n), key=key, app_id=app) for n in range(5)),
        *(Req("t", "9", key="pck_not-a-key", app_id=app) for _ in range(3)),
        Req("t", "10", key=admin, app_id=app),
        Req("t", "11", key=key, app_id=app),
    ]
    with psycopg.connect(database, row_factory=dict_row) as conn:
        conn.execute("SET track_functions = 'pl'")
        rows = group(conn, reqs)
        calls = conn.execute(
            "SELECT calls FROM pg_stat_xact_user_functions"
            " WHERE schemaname = 'picloud' AND funcname = 'authorize'"
        ).fetchone()
        conn.commit()
    assert [r["error_state"] for r in rows] == [None] * 5 + ["28000"] * 3 + [None, None]
    # Once per distinct key; the statistics count only the calls that returned (the two
    # good keys' checks), not the one that raised for the unknown key.
    assert calls is not None and calls["calls"] == 2, "once per distinct key"
    assert [r["message"] for r in logged(db, app, "t")] == [0, 1, 2, 3, 4, 10, 11]


def test_token_publishes_in_a_group(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t", external=True)
    make_topic(db, app, "internal", external=False)
    key = make_key(db, app, "topics:publish")

    writer = mint(db, app, "t", can_publish=True, subject="alice")
    reader = mint(db, app, "t", subject="alice")
    host = "app.localhost"
    reqs = [
        Req("t", '"a"', host=host, token=writer),
        Req("t", '"b"', host=host, token=reader),
        Req("t", '"c"', host="nobody.localhost", token=writer),
        Req("internal", '"d"', host=host, token=writer),
        Req("t", '"e"', key=key, app_id=app),
        Req("t", '"f\\u0000"', host=host, token=writer),
    ]
    rows = group(db, reqs)
    assert [r["error_state"] for r in rows] == [None, "28000", "P0002", "P0002", None, "22P05"]
    assert [r["ids"] for r in rows if r["error_state"] is None] == [[1], [2]]
    stored = db.execute(
        "SELECT message, from_subject FROM picloud.messages WHERE topic = 't' ORDER BY seq"
    ).fetchall()
    assert [(r["message"], r["from_subject"]) for r in stored] == [("a", "alice"), ("e", None)]


def test_one_wake_up_for_the_group(db: Conn, database: str) -> None:
    app = make_app(db)
    for t in ("t", "u"):
        make_topic(db, app, t)
    key = make_key(db, app, "topics:publish")
    with psycopg.connect(database, autocommit=True) as listener:
        listener.execute("LISTEN picloud_realtime")
        group(db, [Req(t, str(n), key=key, app_id=app) for n, t in enumerate("tutu")])
        notes = list(listener.notifies(timeout=0.5))
    assert len(notes) == 1, notes


def test_refused_requests_leave_nothing_behind(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    key = make_key(db, app, "topics:publish")
    rows = group(db, [Req("t", '[1, 2, 3, "x\\u0000"]', single=False, key=key, app_id=app)])
    assert rows[0]["error_state"] == "22P05"
    assert logged(db, app, "t") == []
    row = db.execute("SELECT picloud.topic_head(%s, 't') AS head", (app,)).fetchone()
    assert row is not None and row["head"] == 0


def test_bad_calls(db: Conn) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="one length"):
        db.execute(GROUP, (["k"], [None], [None], [None], [None], ["t", "u"], ["1"], [True]))
    assert db.execute(GROUP, ([], [], [], [], [], [], [], [])).fetchall() == []
    assert db.execute(GROUP, (None,) * 8).fetchall() == []


def test_first_unstorable_message(db: Conn) -> None:
    def first(text: str | None) -> Any:
        row = db.execute("SELECT picloud.first_unstorable_message(%s) AS i", (text,)).fetchone()
        assert row is not None
        return row["i"]

    assert first('[1, "a\\u0000", {"k\\u0000": 1}]') == 1
    assert first('[{"k\\u0000": 1}]') == 0
    assert first("[1, 2]") is None
    assert first('"a\\u0000"') is None  # not an array
    assert first("not json") is None
    assert first(None) is None


# picloud.publish_one: a group of one request, without a subtransaction.

ONE = "SELECT ids, published_at FROM picloud.publish_one(%s, %s, %s, %s, %s, %s, %s, %s)"


def alone(conn: psycopg.Connection[Any], r: Req, capability: str = "topics:publish") -> Row:
    """publish_one of one request, as a row of publish_group (its refusal as the row's
    error_state and error_message)."""
    params = (r.key, r.app_id, capability, r.host, r.token, r.topic, r.messages, r.single)
    try:
        row = conn.execute(ONE, params).fetchone()
    except psycopg.Error as exc:
        return {
            "error_state": exc.sqlstate,
            "error_message": exc.diag.message_primary,
            "ids": None,
            "published_at": None,
        }
    assert row is not None
    return {"error_state": None, "error_message": None, **row}


def world(db: Conn, slug: str) -> list[Req]:
    """An app with topics, keys and tokens, and requests of every kind to it: successes
    and every refusal publish_group answers (input, credentials, in its order)."""
    app = make_app(db, slug)
    other = make_app(db, slug + "-other")
    make_topic(db, app, "t", external=True)
    make_topic(db, app, "u", external=True)
    make_topic(db, app, "internal", external=False)
    good = make_key(db, app, "topics:publish")
    admin = make_key(db, app, "app:admin")
    reader = make_key(db, app, "topics:manage")
    foreign = make_key(db, other, "app:admin")
    instance = make_key(db, None, "instance:admin")

    writer = mint(db, app, "t", can_publish=True, subject="alice")
    listener = mint(db, app, "t", subject="alice")
    host = f"{slug}.localhost"

    def key(topic: str, messages: str, single: bool = True, k: str | None = good) -> Req:
        return Req(topic, messages, single, key=k, app_id=app)

    def tok(topic: str, messages: str, t: str = writer, h: str = host) -> Req:
        return Req(topic, messages, host=h, token=t)

    return [
        key("t", '{"n": 1}'),
        key("t", "[2, 3]", single=False),
        key("u", '"x"'),
        key("t", '"bad\\u0000"'),  # jsonb cannot hold it: 22P05
        key("t", '[4, "bad\\u0000", 5]', single=False),  # named: "message 1: ..."
        key("t", '"' + "x" * 70000 + '"'),  # 54000
        key("t", "[1, " + '"' + "x" * 70000 + '"]', single=False),  # 54000, "message 1 is"
        key("nope", "1"),  # P0002
        key("b*d", "1"),  # 22023
        key("t", "[]", single=False),  # 22023
        key("t", '{"a": 1}', single=False),  # 22023: not an array
        key("t", "{nope"),  # 22P02
        key("t", "[1, {nope]", single=False),  # 22P02
        Req("t", None, key=good, app_id=app),  # type: ignore[arg-type]  # 22023
        key("t", "1", k="pck_not-a-key"),  # 28000
        key("t", "1", k=None),  # 28000
        key("t", "1", k=reader),  # 42501
        key("t", "1", k=foreign),  # 42501
        Req("t", "1", key=good, app_id=uuid.uuid4()),  # P0002: no such app
        key("t", "{nope", k="pck_not-a-key"),  # 28000: the key is checked first
        key("t", "7", k=admin),
        key("t", "8", k=instance),
        tok("t", '"a"'),
        tok("t", '"b"', t=listener),  # 28000
        tok("t", '"c"', t="junk"),  # 28000
        tok("t", '"d"', h="nobody.localhost"),  # P0002
        tok("internal", '"e"'),  # P0002
        tok("nope", '"f"'),  # P0002
        tok("t", '"g\\u0000"'),  # 22P05
        tok("t", '"h\\u0000"', t="junk"),  # 22P05: the message is read first
        tok("t", '"' + "x" * 70000 + '"'),  # 54000
    ]


def test_publish_one_answers_as_the_group_does(db: Conn) -> None:
    grouped = group(db, world(db, "grp"))
    lone = [alone(db, r) for r in world(db, "one")]

    def answer(r: Row) -> tuple[Any, ...]:
        return (r["error_state"], r["error_message"], r["ids"], r["published_at"] is None)

    assert [answer(r) for r in lone] == [answer(r) for r in grouped]
    states = [r["error_state"] for r in lone]
    assert states.count(None) == 6, states
    assert {s for s in states if s} == {
        "22P05",
        "54000",
        "P0002",
        "22023",
        "22P02",
        "28000",
        "42501",
    }
    assert lone[4]["error_message"].startswith("message 1: "), lone[4]
    assert lone[6]["error_message"].startswith("message 1 is 70002 bytes"), lone[6]
    assert lone[19]["error_state"] == "28000" and lone[29]["error_state"] == "22P05"
    # The same messages stored, with the token's subject.
    rows = db.execute(
        "SELECT a.slug, m.topic, m.seq, m.message, m.from_subject FROM picloud.messages m"
        " JOIN picloud.apps a ON a.id = m.app_id ORDER BY a.slug, m.topic, m.seq"
    ).fetchall()
    by_app: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        by_app.setdefault(r["slug"], []).append(
            (r["topic"], r["seq"], r["message"], r["from_subject"])
        )
    assert by_app["one"] == by_app["grp"]
    assert ("t", 6, "a", "alice") in by_app["one"]


def test_publish_one_runs_in_the_callers_transaction_without_a_subtransaction(
    db: Conn, database: str
) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    key = make_key(db, app, "topics:publish")
    with psycopg.connect(database, row_factory=dict_row) as writer:
        first = alone(writer, Req("t", "1", key=key, app_id=app))
        second = alone(writer, Req("t", "[2, 3]", single=False, key=key, app_id=app))
        assert (first["ids"], second["ids"]) == ([1], [2, 3])
        assert logged(db, app, "t") == [], "nothing visible before the commit"
        # Written by the top-level transaction itself: a subtransaction would have its
        # own transaction id in the rows' xmin.
        row = writer.execute(
            "SELECT array_agg(DISTINCT xmin::text) AS xmins,"
            " pg_current_xact_id()::text AS xid FROM picloud.messages"
        ).fetchone()
        assert row is not None and row["xmins"] == [row["xid"]], row
        writer.commit()
    assert [r["message"] for r in logged(db, app, "t")] == [1, 2, 3]
    # publish_group, by contrast, writes each request in a subtransaction of its own.
    with psycopg.connect(database, row_factory=dict_row) as writer:
        group(writer, [Req("t", "4", key=key, app_id=app)])
        row = writer.execute(
            "SELECT array_agg(DISTINCT xmin::text) AS xmins,"
            " pg_current_xact_id()::text AS xid FROM picloud.messages WHERE seq = 4"
        ).fetchone()
        assert row is not None and row["xmins"] != [row["xid"]], row
        writer.rollback()


def test_publish_one_bad_input(db: Conn) -> None:
    app = make_app(db)
    make_topic(db, app, "t")
    key = make_key(db, app, "topics:publish")

    tok = mint(db, app, "t", can_publish=True)

    def call(*params: Any) -> Any:
        return db.execute(ONE, params).fetchone()

    e = psycopg.errors
    cases: list[tuple[tuple[Any, ...], type[psycopg.Error]]] = [
        ((key, app, "topics:publish", None, None, "t", None, True), e.InvalidParameterValue),
        ((key, app, "topics:publish", None, None, "t", None, False), e.InvalidParameterValue),
        ((key, app, "topics:publish", None, None, "t", "{x", True), e.InvalidTextRepresentation),
        (
            (key, app, "topics:publish", None, None, "t", '"\\u0000"', True),
            e.UntranslatableCharacter,
        ),
        ((key, app, "topics:publish", None, None, "t", "1", False), e.InvalidParameterValue),
        ((key, app, "topics:publish", None, None, None, "1", True), e.InvalidParameterValue),
        ((key, app, "topics:publish", None, None, "", "1", True), e.InvalidParameterValue),
        ((key, app, None, None, None, "t", "1", True), e.InsufficientPrivilege),
        ((key, app, "no:such", None, None, "t", "1", True), e.InsufficientPrivilege),
        (
            (None, app, "topics:publish", None, None, "t", "1", True),
            e.InvalidAuthorizationSpecification,
        ),
        ((key, None, "topics:publish", None, None, "t", "1", True), e.InsufficientPrivilege),
        (
            (None, None, None, "app.localhost", None, "t", "1", True),
            e.InvalidAuthorizationSpecification,
        ),
        ((None, None, None, "", "tok", "t", "1", True), e.NoDataFound),
        ((None, None, None, "app.localhost", "tok", None, "1", True), e.NoDataFound),
        ((None, None, None, "app.localhost", tok, "t", None, True), e.InvalidParameterValue),
        ((None, None, None, "app.localhost", tok, "t", "{x", True), e.InvalidTextRepresentation),
    ]
    for params, error in cases:
        with pytest.raises(error):
            call(*params)
    assert logged(db, app, "t") == []
