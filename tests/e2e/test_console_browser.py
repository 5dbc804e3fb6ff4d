"""The web console in headless Chromium against gunicorn: sign in, create a key and see it
once, use it through the ``openai`` client, see the request on the usage chart, revoke it,
see the next call refused. Saves screenshots (``SCREENSHOT_DIR``)."""

from __future__ import annotations

import time

import openai
import pytest

from tests.support.browser import browser, require_chromium, screenshot_dir  # noqa: F401
from tests.support.procs import gunicorn
from tests.support.upstream import start_upstream

require_chromium()

ADMIN_KEY = "console-admin-secret-0123456789"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    up = start_upstream()
    env = {"LM_STUDIO_BASE_URL": up.url, "LOCAL_PRELOAD": "false", "ADMIN_API_KEY": ADMIN_KEY,
           "AUTH_CACHE_SECONDS": "0", "USAGE_FLUSH_SECONDS": "0.1",
           "DATA_DIR": str(tmp_path_factory.mktemp("console-data"))}
    try:
        with gunicorn(env, workers=2) as (url, log, _proc):
            yield url, log
    finally:
        up.shutdown()
        up.server_close()


def _wait_for(predicate, timeout=30.0, interval=0.5, action=None):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        if action:
            action()
        time.sleep(interval)


def test_console_key_lifecycle(browser, screenshot_dir, gateway):  # noqa: F811
    url, log = gateway
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("dialog", lambda dialog: dialog.accept())  # the revoke confirmation
    page.goto(url + "/console/")

    # A wrong key is refused on the sign-in form.
    page.fill("#admin-key", "wrong")
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#sign-in-error:has-text('ADMIN_API_KEY')")
    assert page.is_hidden("#view-keys")

    page.fill("#admin-key", ADMIN_KEY)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#view-keys:not([hidden])")
    assert ADMIN_KEY not in page.url
    assert page.evaluate("sessionStorage.getItem('gateway.adminKey')") == ADMIN_KEY

    # Validation errors from /admin appear next to their field.
    page.fill("#create-form [name=requests_per_minute]", "-5")
    page.click("#create-form button[type=submit]")
    err = page.locator("#create-form [data-error-for=requests_per_minute]")
    err.wait_for()
    _wait_for(lambda: "greater than or equal to 0" in err.inner_text(), timeout=10)

    page.fill("#create-form [name=requests_per_minute]", "")
    page.fill("#create-form [name=name]", "browser-test")
    page.fill("#create-form [name=owner_email]", "dev@example.com")
    page.click("#create-form button[type=submit]")
    page.wait_for_selector("#new-secret:not([hidden])")
    secret = page.inner_text("#new-secret-value")
    assert secret.startswith("sk-")
    page.screenshot(path=str(screenshot_dir / "console-new-key.png"), full_page=True)
    page.click("#dismiss-secret")
    assert secret not in page.content()  # shown once
    row = page.locator("#keys-table tr", has_text="browser-test")
    row.wait_for()
    assert "active" in row.locator("[data-field=state]").inner_text()

    client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
    reply = client.chat.completions.create(model="echo-1",
                                           messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "echo: hello"

    # The request appears on the usage chart (rows are written asynchronously).
    page.click("#tabs [data-view=usage]")
    total = page.locator("[data-chart=requests-by-key] .chart-total")
    _wait_for(lambda: total.count() and total.get_attribute("data-total") == "1",
              action=lambda: page.click("#usage-refresh"))
    assert page.locator("[data-chart=requests-by-key] svg rect[data-value]").count() == 1
    page.locator("#slowest-table tbody tr[data-request-id]").first.wait_for()
    page.screenshot(path=str(screenshot_dir / "console-usage.png"), full_page=True)

    page.click("#tabs [data-view=status]")
    page.wait_for_selector("#checks-table tbody tr")
    assert page.inner_text("#status-refusals") == "0"
    page.screenshot(path=str(screenshot_dir / "console-status.png"), full_page=True)

    # Counters on the key, then revoke it: the next call is refused.
    page.click("#tabs [data-view=keys]")
    row = page.locator("#keys-table tr", has_text="browser-test")
    _wait_for(lambda: row.locator("[data-field=request_count]").inner_text() == "1",
              action=lambda: page.click("#tabs [data-view=keys]"))
    row.locator("button.revoke").click()
    _wait_for(lambda: "revoked" in page.locator("#keys-table tr", has_text="browser-test")
              .locator("[data-field=state]").inner_text(), timeout=10)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="echo-1",
                                       messages=[{"role": "user", "content": "again"}])
    page.close()
    assert ADMIN_KEY not in log.read_text()  # never logged
