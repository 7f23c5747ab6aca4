"""The dashboard in Chromium: signing in and out, the Apps tab, JavaScript-error capture."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, JsErrors, ThreadServer, fits_width, screenshot, sign_in
from tests.fix_server import ADMIN_KEY


def test_sign_in_rejects_a_bad_key_and_sign_out_forgets_the_key(
    page: Page, live_server: ThreadServer
) -> None:
    page.goto(live_server.url + "/dashboard")  # redirected to /dashboard/
    assert page.url == live_server.url + "/dashboard/"
    expect(page.locator("#version")).to_have_text("dashboard 0.12.0 · server 1.1.6")

    page.get_by_label("API key").fill("pck_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-form .form-error")).to_contain_text("401 unauthorized")
    assert page.evaluate("sessionStorage.getItem('picloud.apiKey')") is None

    sign_in(page, live_server)
    assert page.evaluate("sessionStorage.getItem('picloud.apiKey')") == ADMIN_KEY
    page.reload()  # the key survives a reload of the tab
    expect(page.locator("#console")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#sign-in")).to_be_visible()
    assert page.evaluate("Object.keys(sessionStorage).length") == 0
    page.reload()
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#console")).to_be_hidden()


def test_apps_tab_lists_creates_and_adds_a_domain(page: Page, live_server: ThreadServer) -> None:
    existing = live_server.create_app("listed")
    sign_in(page, live_server)
    expect(page.locator(f'#apps-table tr[data-app="{existing["slug"]}"]')).to_be_visible()

    slug = f"made-{uuid.uuid4().hex[:6]}"
    form = page.locator("#create-app-form")
    form.get_by_label("Slug").fill(slug)
    form.get_by_label("Name").fill("Made in the browser")
    form.get_by_role("button", name="Create app").click()
    row = page.locator(f'#apps-table tr[data-app="{slug}"]')
    expect(row).to_contain_text("Made in the browser")
    expect(row).to_have_class("selected")  # the new app becomes the current one

    # The server's validation message is shown, not swallowed.
    form.get_by_label("Slug").fill(slug)
    form.get_by_label("Name").fill("again")
    form.get_by_role("button", name="Create app").click()
    expect(form.locator(".form-error")).to_contain_text("409 conflict")

    domains = page.locator("#add-domain-form")
    host = f"{slug}.example.test"
    domains.get_by_label("Host name").fill(host)
    domains.get_by_role("button", name="Add domain").click()
    expect(page.locator("#domain-list")).to_contain_text(host)
    domains.get_by_label("Host name").fill("bad host:80")
    domains.get_by_role("button", name="Add domain").click()
    expect(domains.locator(".form-error")).to_contain_text("400")

    (made,) = [a for a in live_server.call("GET", "/api/v1/apps")["apps"] if a["slug"] == slug]
    listed = live_server.call("GET", f"/api/v1/apps/{made['id']}/domains")["domains"]
    assert [d["host"] for d in listed] == [host]
    screenshot(page, "apps-desktop")
    assert fits_width(page)
    page.set_viewport_size(PHONE)
    assert fits_width(page)
    screenshot(page, "apps-phone")


def test_an_app_key_signs_in_to_its_own_app(page: Page, live_server: ThreadServer) -> None:
    app = live_server.create_app("scoped")
    key = live_server.call(
        "POST", f"/api/v1/apps/{app['id']}/keys", {"name": "ops", "capabilities": ["app:admin"]}
    )["key"]
    page.goto(live_server.url + "/dashboard/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-form .form-error")).to_contain_text("enter that app's id")
    page.get_by_label("App id").fill(app["id"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app-select")).to_have_value(app["id"])
    expect(page.locator("#app-select option")).to_have_count(1)
    expect(page.locator("#app-select option")).to_contain_text(app["slug"])

    # A key that may only manage topics cannot read the app, but can work on its topics.
    live_server.call("POST", f"/api/v1/apps/{app['id']}/topics", {"name": "news"})
    topics_key = live_server.call(
        "POST", f"/api/v1/apps/{app['id']}/keys", {"name": "t", "capabilities": ["topics:manage"]}
    )["key"]
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").fill(topics_key)
    page.get_by_label("App id").fill(app["id"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("tab", name="Topics").click()
    expect(page.locator('#topics-table tr[data-topic="news"]')).to_be_visible()
    # ... and is told so when it reaches further.
    page.get_by_role("tab", name="Dead letters").click()
    expect(page.locator("#error")).to_contain_text("403 forbidden")


def test_javascript_errors_are_caught(page: Page, js_errors: JsErrors) -> None:
    page.set_content("<p>x</p>")
    with page.expect_event("pageerror"):
        page.evaluate("console.error('bad'); setTimeout(() => { throw new Error('boom') })")
    assert any("boom" in e for e in js_errors.errors)
    assert any("bad" in e for e in js_errors.errors)
    js_errors.errors.clear()  # the page fixture would fail this test otherwise
