"""The Topics tab's token card in Chromium: a token that may publish, with a subject."""

from __future__ import annotations

import psycopg
from playwright.sync_api import Page, expect

from tests.browser.conftest import ThreadServer
from tests.browser.test_dashboard_topics import open_topics


def claims(server: ThreadServer, token: str) -> tuple[bool, str | None]:
    with psycopg.connect(server.conninfo) as conn:
        row = conn.execute(
            "SELECT can_publish, subject FROM picloud.subscriber_token_claims(%s)", (token,)
        ).fetchone()
    assert row is not None, "the dashboard showed a well-formed token"
    return row[0], row[1]


def test_mint_a_token_that_may_publish(page: Page, live_server: ThreadServer) -> None:
    app = live_server.create_app("minting")
    live_server.call("POST", f"/api/v1/apps/{app['id']}/topics", {"name": "chat"})
    open_topics(page, live_server, app)
    form = page.locator("#token-form")
    form.locator("select[name=topic]").select_option("chat")
    form.get_by_role("button", name="Mint token").click()
    expect(page.locator("#token-expiry")).to_contain_text("For chat in")
    expect(page.locator("#token-expiry")).not_to_contain_text("may publish")
    assert claims(live_server, page.locator("#token-value").inner_text()) == (False, None)

    form.get_by_label("May publish").check()
    form.get_by_label("Subject").fill("ada")
    form.get_by_role("button", name="Mint token").click()
    expect(page.locator("#token-expiry")).to_contain_text("(may publish)")
    assert claims(live_server, page.locator("#token-value").inner_text()) == (True, "ada")

    # The server's refusal of a bad subject is shown on the card.
    form.get_by_label("Subject").fill("x" * 300)
    form.get_by_role("button", name="Mint token").click()
    expect(page.locator("#token-form + .form-error")).to_contain_text("400")
