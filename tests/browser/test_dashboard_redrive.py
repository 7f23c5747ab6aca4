"""Bulk redrive in Chromium: the dashboard counts the matching dead letters, asks with the
count, retries them in batches; a second retry of one asks before forcing it."""

from __future__ import annotations

import psycopg
from playwright.sync_api import Page, expect
from psycopg.rows import dict_row

from tests.browser.conftest import ThreadServer, sign_in
from tests.fix_server import free_port
from tests.redrive_util import seed_dead_letters


def test_bulk_redrive_asks_with_the_count(page: Page, live_server: ThreadServer) -> None:
    app = live_server.create_app("redrive")
    base = f"/api/v1/apps/{app['id']}"
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: the redrive only enqueues
    handler = live_server.call(
        "POST", f"{base}/handlers", {"name": "down", "kind": "webhook", "url": url}
    )
    trigger = live_server.call(
        "POST",
        f"{base}/triggers",
        {"name": "t", "source": "kv", "handler_id": handler["id"], "enabled": False},
    )
    with psycopg.connect(live_server.conninfo, autocommit=True, row_factory=dict_row) as db:
        kv = seed_dead_letters(db, app["id"], trigger["id"], handler["id"], 2500)
        docs = seed_dead_letters(db, app["id"], trigger["id"], handler["id"], 3, source="docs")

    sign_in(page, live_server)
    page.locator("#app-select").select_option(app["id"])
    page.get_by_role("tab", name="Dead letters").click()
    dl_filter = page.locator("#dead-letters-filter")
    dl_filter.get_by_label("Source").select_option("kv")
    dl_filter.get_by_role("button", name="Filter").click()
    expect(page.locator(f'#dead-letters-table tr[data-dead-letter="{kv[-1]}"]')).to_be_visible()

    # Cancelling the confirmation retries nothing.
    page.get_by_role("button", name="Retry all not yet retried…").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("Retry 2500 dead letters of source kv that were not retried")
    dialog.get_by_role("button", name="Cancel").click()
    assert (
        live_server.call("POST", f"{base}/dead-letters/retry", {"dry_run": True})["matching"]
        == 2503
    )

    page.get_by_role("button", name="Retry all not yet retried…").click()
    dialog.get_by_role("button", name="Retry 2500").click()
    expect(page.locator("#notice")).to_contain_text("Retried 2500 dead letters.", timeout=30000)
    left = live_server.call("POST", f"{base}/dead-letters/retry", {"dry_run": True})
    assert left["matching"] == len(docs), "only the other source is left"
    row = page.locator(f'#dead-letters-table tr[data-dead-letter="{kv[-1]}"]')
    expect(row).to_contain_text("as delivery #")

    # Nothing more of kv: said so, no dialog.
    page.get_by_role("button", name="Retry all not yet retried…").click()
    expect(page.locator("#notice")).to_contain_text("No dead letters to retry.")

    # One already retried: the dashboard asks before forcing a second delivery.
    first = live_server.call("GET", f"{base}/dead-letters/{kv[-1]}")["retry_delivery_id"]
    row.get_by_role("button", name=f"Retry dead letter #{kv[-1]}").click()
    expect(dialog).to_contain_text(f"was already retried as delivery #{first}")
    dialog.get_by_role("button", name="Retry again").click()
    expect(page.locator("#notice")).to_contain_text(f"Dead letter #{kv[-1]} re-enqueued")
    again = live_server.call("GET", f"{base}/dead-letters/{kv[-1]}")["retry_delivery_id"]
    assert again != first
