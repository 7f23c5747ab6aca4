"""Topic epochs: a resume never skips silently across a delete + create, or past the head."""

from __future__ import annotations

import pytest

from picloud.realtime.cursor import BIGINT_MAX, Cursor, format_cursor, parse_cursor
from tests.fix_server import Api, Server
from tests.sse_client import Event, SseStream
from tests.test_realtime_sse import Realtime


@pytest.fixture
async def rt(api: Api, server: Server) -> Realtime:
    return await Realtime.create(api, server)


def test_cursor_format_and_strict_parsing() -> None:
    assert parse_cursor(format_cursor(17, 5)) == Cursor(5, 17)
    assert parse_cursor("5") == Cursor(5, None), "a plain id from before epochs"
    assert parse_cursor("0") == Cursor(0, None)
    assert parse_cursor(f"v1.{BIGINT_MAX}.{BIGINT_MAX}") == Cursor(BIGINT_MAX, BIGINT_MAX)
    bad = [
        "",
        "x1",
        "-1",
        "+1",
        "1.5",
        "²",
        "v1.².1",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: int() would take it
        "01",
        str(BIGINT_MAX + 1),
        f"v1.{BIGINT_MAX + 1}.1",
        f"v1.1.{BIGINT_MAX + 1}",
        "v1.1",
        "v1.1.2.3",
        "v2.1.2",
        "V1.1.2",
        "v1.1.2\n",
        "1\n",
        " 0 ",  # (HTTP strips a header value; a query parameter is taken as it is)
    ]
    for text in bad:
        with pytest.raises(ValueError):
            parse_cursor(text)


async def _reset_then(stream: SseStream) -> Event:
    event = await stream.next_event()
    assert event.event == "reset", event
    return event


async def test_resume_across_delete_and_recreate_is_reset(rt: Realtime) -> None:
    await rt.topic("t")
    live = await rt.subscribe("t")
    for i in range(1, 6):
        await rt.publish("t", i)
    events = [await live.next_event() for _ in range(5)]
    old_cursor = events[-1].id
    assert old_cursor is not None and events[-1].seq == 5
    assert (await rt.api.delete(f"/api/v1/apps/{rt.app['id']}/topics/t")).status == 204
    # A client connected across the delete is ended, as before.
    await live.expect_end()
    await rt.topic("t")
    assert [await rt.publish("t", n) for n in ("a", "b")] == [1, 2]

    for cursor in (old_cursor, "5"):  # the epoch cursor, and a plain id from an old client
        resumed = await rt.subscribe("t", headers={"Last-Event-ID": cursor})
        reset = await _reset_then(resumed)
        epoch = reset.json["epoch"]
        assert reset.json == {"topic": "t", "epoch": epoch, "oldest": 1}
        assert epoch != parse_cursor(old_cursor).epoch
        assert reset.id == format_cursor(epoch, 0)
        assert await resumed.messages(2) == [(1, "a"), (2, "b")]
        resumed.close()

    fresh = await rt.subscribe("t", headers={"Last-Event-ID": old_cursor})
    await _reset_then(fresh)
    await fresh.messages(2)
    await rt.publish("t", "c")
    live_event = await fresh.next_event()
    assert live_event.id == format_cursor(epoch, 3), "live frames carry the new epoch"
    fresh.close()


async def test_cursor_beyond_the_head_is_reset(rt: Realtime) -> None:
    await rt.topic("t")
    for i in range(1, 6):
        await rt.publish("t", i)
    ahead = await rt.subscribe("t", headers={"Last-Event-ID": "99"})
    reset = await _reset_then(ahead)
    assert reset.json["oldest"] == 1
    assert await ahead.messages(5) == [(n, n) for n in range(1, 6)]
    await rt.publish("t", 6)
    assert await ahead.messages(1) == [(6, 6)]
    ahead.close()
    # The same with an epoch cursor of this incarnation, and on an empty topic.
    epoch = reset.json["epoch"]
    ahead = await rt.subscribe("t", headers={"Last-Event-ID": format_cursor(epoch, 7)})
    await _reset_then(ahead)
    assert [seq for seq, _ in await ahead.messages(6)] == list(range(1, 7))
    ahead.close()
    await rt.topic("empty")
    nothing = await rt.subscribe("empty", headers={"Last-Event-ID": "3"})
    reset = await _reset_then(nothing)
    assert reset.json["oldest"] is None and reset.id == format_cursor(reset.json["epoch"], 0)
    nothing.close()


async def test_plain_and_current_cursors_resume_without_reset(rt: Realtime) -> None:
    await rt.topic("t")
    first = await rt.subscribe("t")
    for i in range(1, 6):
        await rt.publish("t", i)
    events = [await first.next_event() for _ in range(5)]
    first.close()
    for cursor in ("3", events[2].id):
        assert cursor is not None
        resumed = await rt.subscribe("t", headers={"Last-Event-ID": cursor})
        assert await resumed.messages(2) == [(4, 4), (5, 5)], cursor
        resumed.close()
    # The reset event's own id resumes without a second reset.
    ahead = await rt.subscribe("t", headers={"Last-Event-ID": "50"})
    reset = await _reset_then(ahead)
    ahead.close()
    assert reset.id is not None
    again = await rt.subscribe("t", headers={"Last-Event-ID": reset.id})
    assert await again.messages(1) == [(1, 1)]
    again.close()


async def test_malformed_cursors_are_400(rt: Realtime) -> None:
    await rt.topic("t")
    for bad in ("²", "v1.1", "v9.1.2", str(BIGINT_MAX + 1), "1.5"):
        stream = await rt.subscribe("t", headers={"Last-Event-ID": bad})
        assert stream.status == 400, bad
        body = await stream.response.json()
        assert body["error"]["code"] == "invalid_input"
        assert "Last-Event-ID" in body["error"]["message"]
        stream.close()
        history = await rt.api.get(f"/api/v1/apps/{rt.app['id']}/topics/t/messages?after={bad}")
        assert history.status == 400, bad


async def test_history_carries_the_epoch(rt: Realtime) -> None:
    base = f"/api/v1/apps/{rt.app['id']}/topics/t/messages"
    await rt.topic("t")
    for i in range(1, 4):
        await rt.publish("t", i)
    page = (await rt.api.get(f"{base}?after=1")).json
    epoch = page["epoch"]
    assert page["reset"] is False
    assert [(m["id"], m["cursor"]) for m in page["messages"]] == [
        (2, format_cursor(epoch, 2)),
        (3, format_cursor(epoch, 3)),
    ]
    by_cursor = (await rt.api.get(f"{base}?after={format_cursor(epoch, 2)}")).json
    assert [m["id"] for m in by_cursor["messages"]] == [3] and by_cursor["reset"] is False

    await rt.api.delete(f"/api/v1/apps/{rt.app['id']}/topics/t")
    await rt.topic("t")
    await rt.publish("t", "new")
    stale = (await rt.api.get(f"{base}?after={format_cursor(epoch, 2)}")).json
    assert stale["reset"] is True and stale["epoch"] != epoch
    assert [(m["id"], m["message"]) for m in stale["messages"]] == [(1, "new")]
    beyond = (await rt.api.get(f"{base}?after=9")).json
    assert beyond["reset"] is True and [m["id"] for m in beyond["messages"]] == [1]
