"""The Apps tab's token signing key card in Chromium: status, rotation after a
confirmation (cancel keeps the key), the server's 400 shown, an app key without app:admin."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import ThreadServer, screenshot, sign_in


def test_rotate_the_signing_key_with_confirmation(page: Page, live_server: ThreadServer) -> None:
    app = live_server.create_app("rotating")
    base = f"/api/v1/apps/{app['id']}"
    live_server.call("POST", f"{base}/topics", {"name": "room"})
    live_server.call("POST", f"{base}/topics/room/tokens", {})  # creates key version 1
    sign_in(page, live_server)
    page.locator("#app-select").select_option(app["id"])
    card = page.locator("#signing-key")
    facts = card.locator("#signing-key-facts")
    expect(facts).to_contain_text("Version1")
    expect(facts).to_contain_text("Rotatednever")

    form = card.locator("#rotate-key-form")
    form.get_by_label("Grace for the previous key (seconds)").fill("120")
    form.get_by_role("button", name="Rotate signing key").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text(f"Rotate the token signing key of {app['slug']}?")
    expect(dialog).to_contain_text("valid for 120 seconds")
    dialog.get_by_role("button", name="Cancel").click()
    assert live_server.call("GET", f"{base}/signing-keys")["key_version"] == 1, "cancel keeps it"

    form.get_by_role("button", name="Rotate signing key").click()
    dialog.get_by_role("button", name="Rotate key").click()
    expect(page.locator("#notice")).to_contain_text("key version 2")
    expect(facts).to_contain_text("Version2")
    expect(facts).not_to_contain_text("Rotatednever")
    status = live_server.call("GET", f"{base}/signing-keys")
    assert status["key_version"] == 2 and status["previous_valid_until"] is not None
    screenshot(page, "signing-key")

    # Beyond 30 days: the browser lets it through (no max check on submit is relied on), the
    # server refuses it and the form says so.
    page.evaluate("document.querySelector('#rotate-key-form input').removeAttribute('max')")
    form.get_by_label("Grace for the previous key (seconds)").fill("99999999")
    form.get_by_role("button", name="Rotate signing key").click()
    dialog.get_by_role("button", name="Rotate key").click()
    expect(form.locator(".form-error")).to_contain_text("400")
    assert live_server.call("GET", f"{base}/signing-keys")["key_version"] == 2


def test_an_app_key_without_app_admin_sees_no_rotation(
    page: Page, live_server: ThreadServer
) -> None:
    app = live_server.create_app("no-admin")
    key = live_server.call(
        "POST",
        f"/api/v1/apps/{app['id']}/keys",
        {"name": "ops", "capabilities": ["topics:manage", "tokens:mint"]},
    )["key"]
    admin_key = live_server.call(
        "POST", f"/api/v1/apps/{app['id']}/keys", {"name": "a", "capabilities": ["app:admin"]}
    )["key"]
    page.goto(live_server.url + "/dashboard/")
    page.get_by_label("API key").fill(admin_key)
    page.get_by_label("App id").fill(app["id"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signing-key-facts")).to_contain_text("none yet")
    expect(page.locator("#rotate-key-form")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    # A narrower key: the card says what rotation needs and offers no control.
    page.get_by_label("API key").fill(key)
    page.get_by_label("App id").fill(app["id"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signing-key-facts")).to_contain_text("Rotation needs app:admin.")
    expect(page.locator("#rotate-key-form")).to_be_hidden()
