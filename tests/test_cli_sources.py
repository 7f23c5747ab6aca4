"""The CLI takes the sources and statuses SQL knows: an unknown one is refused by the
statement (picloud.event_sources(), delivery_statuses()), naming the known ones."""

from __future__ import annotations

from tests.test_cli import Cli, ok_json, picloud, refused

__all__ = ["picloud"]


def test_unknown_sources_and_statuses_are_refused(picloud: Cli) -> None:
    ok_json(picloud, "apps", "create", "--slug", "srcs", "--name", "Sources")
    hook = ok_json(picloud, "handlers", "create", "srcs", "h", "--url", "https://x.test/")
    made = ok_json(
        picloud, "triggers", "create", "srcs", "t", "--source", "docs", "--handler", hook["id"]
    )
    assert made["source"] == "docs"
    create = ("triggers", "create", "srcs", "t2", "--source", "email", "--handler", hook["id"])
    assert "one of kv, docs, files, cron, pubsub, dead_letter" in refused(picloud, *create)
    assert "unknown delivery status" in refused(
        picloud, "deliveries", "list", "srcs", "--status", "bogus"
    )
    assert "unknown source" in refused(picloud, "deliveries", "list", "srcs", "--source", "email")
    assert "unknown source" in refused(picloud, "dead-letters", "list", "srcs", "--source", "x")
    assert "unknown source" in refused(
        picloud, "dead-letters", "retry", "--app", "srcs", "--source", "x"
    )
    assert ok_json(picloud, "deliveries", "list", "srcs", "--status", "dead")["deliveries"] == []
