"""The Deliveries and Dead letters tabs in Chromium, on a real failing webhook: filter,
inspect the event and attempts, retry a dead letter, discard one."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, ThreadServer, fits_width, screenshot, sign_in
from tests.fix_server import free_port


def wait_for(check: Any, within: float = 15) -> Any:
    """Polls the API for a state no event announces (the dispatcher's work)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not reached within {within}s")


def dead_letter_of_a_refused_webhook(server: ThreadServer) -> tuple[dict[str, Any], dict[str, Any]]:
    app = server.create_app("outbox")
    base = f"/api/v1/apps/{app['id']}"
    # Nothing listens on this port: every delivery to the webhook fails at once.
    url = f"http://127.0.0.1:{free_port()}/hook"
    handler = server.call(
        "POST", f"{base}/handlers", {"name": "refused", "kind": "webhook", "url": url}
    )
    server.call(
        "POST",
        f"{base}/triggers",
        {
            "name": "on-orders",
            "source": "pubsub",
            "filter": {"match": "orders.*"},
            "handler_id": handler["id"],
            "max_attempts": 1,
            "enabled": True,
        },
    )
    server.call("POST", f"{base}/topics", {"name": "orders.paid"})
    server.call("POST", f"{base}/topics/orders.paid/messages", {"message": {"order": 7}})
    (dead,) = wait_for(lambda: server.call("GET", f"{base}/dead-letters")["dead_letters"])
    return app, dead


def test_inspect_deliveries_and_retry_and_discard_dead_letters(
    page: Page, live_server: ThreadServer
) -> None:
    app, dead = dead_letter_of_a_refused_webhook(live_server)
    base = f"/api/v1/apps/{app['id']}"
    sign_in(page, live_server)
    page.locator("#app-select").select_option(app["id"])

    # Deliveries: filtered by status, inspected with the event and the failed attempt.
    page.get_by_role("tab", name="Deliveries").click()
    filters = page.locator("#deliveries-filter")
    filters.get_by_label("Status").select_option("done")
    filters.get_by_role("button", name="Filter").click()
    expect(page.locator("#tab-deliveries .empty")).to_be_visible()
    filters.get_by_label("Status").select_option("dead")
    filters.get_by_label("Source").select_option("pubsub")
    filters.get_by_role("button", name="Filter").click()
    row = page.locator(f'#deliveries-table tr[data-delivery="{dead["delivery_id"]}"]')
    expect(row).to_contain_text("dead")
    expect(row).to_contain_text("orders.paid")
    row.get_by_role("button", name=f"Inspect delivery #{dead['delivery_id']}").click()
    detail = page.locator("#delivery-detail")
    expect(detail).to_contain_text('"order": 7')
    expect(detail.locator("table.attempts tbody tr")).to_have_count(1)
    expect(detail.locator("table.attempts")).to_contain_text("error")
    screenshot(page, "deliveries-desktop")

    # Dead letters: filter by source, inspect, retry.
    page.get_by_role("tab", name="Dead letters").click()
    dl_filter = page.locator("#dead-letters-filter")
    dl_filter.get_by_label("Source").select_option("kv")
    dl_filter.get_by_role("button", name="Filter").click()
    expect(page.locator("#tab-dead-letters .empty")).to_be_visible()
    dl_filter.get_by_label("Source").select_option("pubsub")
    dl_filter.get_by_role("button", name="Filter").click()
    dl_row = page.locator(f'#dead-letters-table tr[data-dead-letter="{dead["id"]}"]')
    expect(dl_row).to_contain_text("orders.paid")
    dl_row.get_by_role("button", name=f"Inspect dead letter #{dead['id']}").click()
    dl_detail = page.locator("#dead-letter-detail")
    expect(dl_detail).to_contain_text('"order": 7')
    expect(dl_detail.locator("table.attempts tbody tr")).to_have_count(1)

    dl_row.get_by_role("button", name=f"Retry dead letter #{dead['id']}").click()
    expect(page.locator("#notice")).to_contain_text(f"Dead letter #{dead['id']} re-enqueued")
    retried = live_server.call("GET", f"{base}/dead-letters/{dead['id']}")
    assert retried["retry_delivery_id"] is not None
    expect(dl_row).to_contain_text(f"as delivery #{retried['retry_delivery_id']}")
    fresh = live_server.call("GET", f"{base}/deliveries/{retried['retry_delivery_id']}")
    assert (fresh["retry_of"], fresh["event"]) == (dead["id"], dead["event"])

    screenshot(page, "dead-letters-desktop")
    assert fits_width(page)
    page.set_viewport_size(PHONE)
    assert fits_width(page)
    screenshot(page, "dead-letters-phone")

    # Discard asks first, then the dead letter is gone.
    dl_row.get_by_role("button", name=f"Discard dead letter #{dead['id']}").click()
    page.locator("#confirm").get_by_role("button", name="Discard").click()
    expect(dl_row).to_have_count(0)
    assert live_server.status("GET", f"{base}/dead-letters/{dead['id']}") == 404
