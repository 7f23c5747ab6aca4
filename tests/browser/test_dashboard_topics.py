"""The Topics tab in Chromium: create (and the server's 400), auth mode and external flag,
publish, live tail over SSE, delete with confirmation; screenshots at two widths."""

from __future__ import annotations

import http.client
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, ThreadServer, fits_width, screenshot, sign_in


def open_topics(page: Page, server: ThreadServer, app: dict[str, Any]) -> None:
    sign_in(page, server)
    page.locator("#app-select").select_option(app["id"])
    page.get_by_role("tab", name="Topics").click()
    expect(page.locator("#tab-topics")).to_be_visible()


def test_topic_lifecycle_with_live_tail(page: Page, live_server: ThreadServer) -> None:
    app = live_server.create_app("topics")
    topics = f"/api/v1/apps/{app['id']}/topics"
    open_topics(page, live_server, app)
    expect(page.locator("#tab-topics .empty")).to_be_visible()

    # A bad name: the server's 400 message is shown next to the form.
    form = page.locator("#create-topic-form")
    form.get_by_label("Name").fill("bad name!")
    form.get_by_role("button", name="Create topic").click()
    error = form.locator(".form-error")
    expect(error).to_contain_text("400 invalid_input")
    assert live_server.call("GET", topics)["topics"] == []

    form.get_by_label("Name").fill("orders.created")
    form.get_by_role("button", name="Create topic").click()
    row = page.locator('#topics-table tr[data-topic="orders.created"]')
    expect(row.locator("select.auth-mode")).to_have_value("token")
    expect(row.locator("input.external")).not_to_be_checked()
    expect(error).to_be_hidden()

    # Switch the auth mode and the external flag; each change is saved at once.
    row.locator("select.auth-mode").select_option("public")
    expect(page.locator("#notice")).to_contain_text("auth public")
    assert live_server.call("GET", f"{topics}/orders.created")["auth_mode"] == "public"
    row.locator("input.external").check()
    expect(page.locator("#notice")).to_contain_text("external true")
    saved = live_server.call("GET", f"{topics}/orders.created")
    assert (saved["auth_mode"], saved["external_subscribable"]) == ("public", True)

    # Live tail, then publish from the page and from the API: both arrive with id and time.
    row.get_by_role("button", name="Tail").click()
    expect(page.locator("#tail-status")).to_have_attribute("data-state", "live")
    publish = page.locator("#publish-form")
    publish.get_by_label("Message (JSON)").fill('{"order": 42, "note": "<b>not html</b>"}')
    publish.get_by_role("button", name="Publish").click()
    expect(page.locator("#publish-result")).to_contain_text("Published #1")
    first = page.locator('#tail-list li[data-id="1"]')
    expect(first).to_contain_text('"order": 42')
    expect(first).to_contain_text("<b>not html</b>")
    expect(first.locator("time")).not_to_have_text("—")
    live_server.call("POST", f"{topics}/orders.created/messages", {"message": {"from": "api"}})
    expect(page.locator('#tail-list li[data-id="2"]')).to_contain_text('"from": "api"')
    expect(page.locator("#tail-list li").first).to_have_attribute("data-id", "2")

    # Not JSON: refused in the page with a message, nothing sent.
    publish.get_by_label("Message (JSON)").fill("{oops")
    publish.get_by_role("button", name="Publish").click()
    expect(publish.locator(".form-error")).to_contain_text("not valid JSON")

    publish.get_by_label("Message (JSON)").fill('{"hello": "world"}')
    publish.locator(".form-error").evaluate("e => e.hidden = true")
    screenshot(page, "topics-desktop")
    assert fits_width(page)
    page.set_viewport_size(PHONE)
    assert fits_width(page)
    screenshot(page, "topics-phone")

    # Delete asks first; cancelling keeps the topic.
    row.get_by_role("button", name="Delete orders.created").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("Delete the topic orders.created?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(row).to_be_visible()
    row.get_by_role("button", name="Delete orders.created").click()
    dialog.get_by_role("button", name="Delete topic").click()
    expect(row).to_have_count(0)
    expect(page.locator("#tail-status")).to_have_attribute("data-state", "closed")
    assert live_server.status("GET", f"{topics}/orders.created") == 404

    # A topic can track presence from its creation.
    form.get_by_label("Name").fill("room")
    form.get_by_label("Track presence").check()
    form.get_by_role("button", name="Create topic").click()
    room = page.locator('#topics-table tr[data-topic="room"]')
    expect(room.locator("input.presence")).to_be_checked()
    assert live_server.call("GET", f"{topics}/room")["presence"] is True


def test_api_errors_while_tailing_are_shown(page: Page, live_server: ThreadServer) -> None:
    app = live_server.create_app("gone")
    live_server.call("POST", f"/api/v1/apps/{app['id']}/topics", {"name": "t1"})
    open_topics(page, live_server, app)
    page.locator('#topics-table tr[data-topic="t1"]').get_by_role("button", name="Tail").click()
    expect(page.locator("#tail-status")).to_have_attribute("data-state", "live")
    # Deleted behind the page's back: the stream ends, the reconnect is refused with 404.
    live_server.call("DELETE", f"/api/v1/apps/{app['id']}/topics/t1")
    expect(page.locator("#tail-status")).to_have_attribute("data-state", "failed")
    expect(page.locator("#tail-error")).to_contain_text("404")
    # A stale row: changing it shows the server's 404 and puts the control back.
    mode = page.locator('#topics-table tr[data-topic="t1"] select.auth-mode')
    mode.select_option("public")
    expect(page.locator("#error")).to_contain_text("404")
    expect(mode).to_have_value("token")


def test_tail_follows_several_topics_and_shows_presence(
    page: Page, live_server: ThreadServer
) -> None:
    app = live_server.create_app("several")
    base = f"/api/v1/apps/{app['id']}"
    for name in ("orders", "room"):
        live_server.call(
            "POST",
            f"{base}/topics",
            {"name": name, "external_subscribable": True, "auth_mode": "public"},
        )
    open_topics(page, live_server, app)
    # Presence is switched on from the table (saved at once).
    room = page.locator('#topics-table tr[data-topic="room"]')
    room.locator("input.presence").check()
    expect(page.locator("#notice")).to_contain_text("presence true")
    assert live_server.call("GET", f"{base}/topics/room")["presence"] is True

    page.locator('#topics-table tr[data-topic="orders"]').get_by_role("button", name="Tail").click()
    expect(page.locator("#tail-status")).to_have_attribute("data-state", "live")
    room.get_by_role("button", name="Also follow room").click()
    expect(page.locator("#tail-status")).to_have_text("live: orders, room")

    # A subscriber with a subject joins the presence topic on the app's host.
    token = live_server.call(
        "POST", f"{base}/tokens", {"topics": ["room"], "subject": "ada", "info": {"name": "Ada"}}
    )["token"]
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    conn.request(
        "GET", f"/realtime/topics/room?token={token}", headers={"Host": f"{app['slug']}.localhost"}
    )
    assert conn.getresponse().status == 200
    try:
        joined = page.locator('#tail-list li.presence[data-subject="ada"][data-event="joined"]')
        expect(joined).to_contain_text('ada joined room {"name":"Ada"}')
        expect(page.locator("#tail-presence")).to_have_text("Present — room: ada")

        # Messages of both topics arrive on the one stream, each with its topic and number.
        live_server.call("POST", f"{base}/topics/orders/messages", {"message": {"n": 1}})
        live_server.call("POST", f"{base}/topics/room/messages", {"message": {"n": 2}})
        expect(page.locator('#tail-list li[data-topic="orders"][data-id="1"]')).to_contain_text(
            '"n": 1'
        )
        expect(page.locator('#tail-list li[data-topic="room"][data-id="1"]')).to_contain_text(
            '"n": 2'
        )
        screenshot(page, "tail-several-topics")
    finally:
        conn.close()
    left = page.locator('#tail-list li.presence[data-subject="ada"][data-event="left"]')
    expect(left).to_be_visible()
    expect(page.locator("#tail-presence")).to_have_text("Present — room: nobody")
    page.locator("#tail-stop").click()
    expect(page.locator("#tail-status")).to_have_attribute("data-state", "closed")
