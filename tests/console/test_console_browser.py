"""The admin web console in a real headless Chromium against a real gateway (two workers, SQLite):
sign-in with the key `gateway init` printed, a client's whole life (create, add a key read once,
403 before a grant, assign a permission, 200, revoke, refused within a second), tenant fences,
CSRF, escaping, sign-out and revocation ending sessions. Screenshots of the main pages go to
tests/console/screenshots/ (git-ignored) for reviewers."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.console.conftest import screenshot
from tests.support.harness import Gateway
from tests.support.processes import http_client

DOCUMENT = "/v1/users/1/documents/2"


def console(gateway: Gateway, path: str = "") -> str:
    return f"{gateway.admin_url}/console/{path}"


def sign_in(page: Any, gateway: Gateway, credential: str) -> None:
    page.goto(console(gateway))
    assert page.url == console(gateway, "sign-in")
    page.fill("#credential", credential)
    page.click("#sign-in")
    page.wait_for_url(console(gateway))


def proxy_status(gateway: Gateway, key: str) -> int:
    with http_client() as client:
        return client.get(
            gateway.proxy_url + DOCUMENT, headers={"Authorization": f"Bearer {key}"}
        ).status_code


def wait_for_status(gateway: Gateway, key: str, status: int, within: float) -> float:
    """Seconds until the proxy answers `status` for `key` (fails after `within`)."""
    started = time.monotonic()
    while True:
        got = proxy_status(gateway, key)
        elapsed = time.monotonic() - started
        if got == status:
            return elapsed
        assert elapsed < within, f"still {got} after {elapsed:.2f} s, expected {status}"
        time.sleep(0.02)


def new_admin(gateway: Gateway, **client: Any) -> tuple[str, str]:
    """A second client holding gateway-admin on /gateway: (client id, access key)."""
    api = gateway.admin()
    client_id, key = api.new_client_with_key(**client)
    api.create_record([client_id], ["gateway-admin"], ["/gateway"])
    return client_id, key


def test_a_client_from_creation_to_revocation(context: Any, gateway: Gateway) -> None:
    assert gateway.admin_key is not None
    page = context.new_page()
    violations: list[str] = []  # the pages need nothing the CSP forbids (no inline script or style)
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    sign_in(page, gateway, gateway.admin_key)
    assert page.locator("#stat-clients").inner_text().isdigit()
    screenshot(page, "overview")

    # Nothing of the key is kept by the browser: not in storage, not in a cookie, not in the URL.
    assert page.evaluate("[localStorage.length, sessionStorage.length]") == [0, 0]
    cookies = context.cookies()
    assert [c["name"] for c in cookies] == ["gateway_console"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert gateway.admin_key not in cookies[0]["value"] and "sc_" not in page.url

    name = f"billing-worker-{uuid.uuid4().hex[:6]}"
    page.goto(console(gateway, "clients"))
    page.fill("#create-client input[name=name]", name)
    page.fill("#create-client input[name=scopes]", "documents")
    page.click("#create-client button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/clients/sc_"))
    client_id = page.locator("#client-id").inner_text()
    assert page.locator("#client-title").inner_text() == name

    page.click("#add-key")
    page.wait_for_selector("#new-secret")
    key = page.locator("#new-secret").inner_text().strip()
    assert key.startswith(f"{client_id}.")
    assert "shown only this once" in page.locator("#shown-once").inner_text()
    page.click("#copy-secret")
    from playwright.sync_api import expect  # present whenever `page` is (tests/console/conftest.py)

    # Polled by Playwright's own selector engine. A string predicate (wait_for_function) may be
    # run through eval(), which the console's CSP (script-src 'self') refuses: it failed once
    # that way with EvalError, after passing many runs.
    expect(page.locator("#copy-secret")).to_have_text("Copied", timeout=5000)
    screenshot(page, "client-new-key")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # the key wraps in its box
    # The address bar now names the plain page: a reload fetches it afresh, without the key.
    assert page.url == console(gateway, f"clients/{client_id}")
    page.reload()
    assert key not in page.content() and page.locator("#new-secret").count() == 0

    assert proxy_status(gateway, key) == 403  # no grant yet

    role_id = f"doc-reader-{uuid.uuid4().hex[:6]}"
    page.goto(console(gateway, "roles"))
    page.fill("#create-role input[name=role_id]", role_id)
    page.fill("#create-role input[name=name]", "Document reader")
    page.fill("#create-role textarea[name=actions]", "documents:read")
    page.click("#create-role button[type=submit]")
    page.wait_for_url(console(gateway, "roles"))
    assert role_id in page.locator("#roles").inner_text()
    screenshot(page, "roles")

    page.goto(console(gateway, f"clients/{client_id}"))
    assert page.locator("#no-permissions").count() == 1
    page.select_option("#assign-role", role_id)
    page.fill("#assign-resources", "/users/1")
    page.click("#assign-submit")
    page.wait_for_url(console(gateway, f"clients/{client_id}"))
    assert "documents:read" in page.locator("#effective-permissions").inner_text()
    screenshot(page, "client")

    wait_for_status(gateway, key, 200, within=2.0)  # the same request passes now

    key_id = key.split(".")[1]
    row = page.locator("#access-keys tr", has_text=key_id)
    row.locator("button", has_text="Revoke").click()
    page.wait_for_url(console(gateway, f"clients/{client_id}"))
    refused_after = wait_for_status(gateway, key, 401, within=1.0)
    assert key_id not in page.locator("main").inner_text()
    assert key not in page.content()

    # A key that expires: its date is listed, and it works until then.
    page.select_option("#add-key-expiry", "2592000")
    page.click("#add-key")
    page.wait_for_selector("#new-secret")
    expiring = page.locator("#new-secret").inner_text().strip()
    in_30_days = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    assert in_30_days in page.locator("#access-keys tr", has_text=expiring.split(".")[1]).inner_text()
    wait_for_status(gateway, expiring, 200, within=2.0)

    # The client's usage: this test's 403 and 200s, written by the workers in their batches.
    deadline = time.monotonic() + 3
    while True:
        page.goto(console(gateway, f"clients/{client_id}"))
        usage = page.locator("#usage tbody tr").all_inner_texts()
        cells = usage[0].split("\t") if usage else []
        if len(cells) == 3 and int(cells[1]) >= 1 and int(cells[2]) >= 1:  # the 200s; the 403
            break
        assert time.monotonic() < deadline, f"usage not shown: {usage}"
        time.sleep(0.2)
    assert cells[0] == "read-document"

    page.goto(console(gateway, "records"))
    assert client_id in page.locator("#records").inner_text()
    screenshot(page, "records")

    page.goto(console(gateway, f"audit?action=access_key.&target={client_id}"))
    audit = page.locator("main table").inner_text()
    assert "access_key.create" in audit and "access_key.revoke" in audit and "client.create" not in audit
    screenshot(page, "audit")

    page.goto(console(gateway, "policies"))
    page.fill("#explain-client", client_id)
    page.fill("#explain-path", DOCUMENT)
    page.click("#explain button[type=submit]")
    page.wait_for_selector("#decision")
    assert page.locator("#decision").inner_text().startswith("ALLOW")
    assert role_id in page.locator("#decision-reason").inner_text()
    screenshot(page, "policies-explain")
    page.fill("#explain-path", "/v1/users/2/documents/2")
    page.click("#explain button[type=submit]")
    page.wait_for_selector("#decision.deny")
    assert "no grant" in page.locator("#decision-reason").inner_text()

    page.goto(console(gateway, "signing-keys"))
    before = page.locator("#signing-keys").inner_text()
    page.check("#rotate input[name=confirm]")
    page.check("#rotate input[name=now]")
    page.click("#rotate button[type=submit]")
    page.wait_for_url(console(gateway, "signing-keys"))
    assert page.locator("#signing-keys").inner_text().count("retired") == before.count("retired") + 1
    screenshot(page, "signing-keys")

    # A narrow screen: the same pages, the navigation as a row above them.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(console(gateway))
    # This test's proxy calls (a 403, at least one 200, a 401), counted by either worker.
    assert int(page.locator("#stat-requests").inner_text()) >= 3
    assert int(page.locator("#stat-refused").inner_text()) >= 2
    screenshot(page, "overview-narrow")
    page.goto(console(gateway, f"clients/{client_id}"))
    screenshot(page, "client-narrow")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the client page scrolls sideways on a narrow screen ({width} px)"
    assert violations == []
    print(f"revoked key refused after {refused_after:.3f} s")


def test_user_text_is_shown_as_text(context: Any, gateway: Gateway) -> None:
    assert gateway.admin_key is not None
    marker = uuid.uuid4().hex[:8]
    name = f'<script>window.pwned=1</script><img src=x onerror="window.pwned=2">{marker}'
    created = gateway.admin().create_client(name, description="<b>bold</b>")
    page = context.new_page()
    sign_in(page, gateway, gateway.admin_key)
    page.goto(console(gateway, f"clients?q={marker}"))
    assert page.locator(".client-name").inner_text() == name
    page.goto(console(gateway, f"clients/{created['clientId']}"))
    assert page.locator("#client-title").inner_text() == name
    assert page.locator("main img").count() == 0 and page.locator("main b").count() == 0
    assert page.evaluate("window.pwned") is None


def test_a_tenant_admin_sees_and_changes_only_its_tenant(context: Any, gateway: Gateway) -> None:
    api = gateway.admin()
    tenant = f"acme{uuid.uuid4().hex[:6]}"
    admin_id, admin_key = api.new_client_with_key(tenant=tenant)
    role = api.create_role(["gateway:clients:*"])
    api.create_record([admin_id], [role], ["/gateway/clients"])
    ours = api.create_client(f"ours-{tenant}", tenant=tenant)["clientId"]
    theirs_id, theirs_key = api.new_client_with_key(name=f"theirs-{tenant}", tenant="globex")

    page = context.new_page()
    sign_in(page, gateway, admin_key)
    nav = page.locator("nav.side").inner_text()
    assert "Service clients" in nav and "Roles" not in nav and "Audit log" not in nav
    assert page.locator("#stat-clients").inner_text() == "2"  # its tenant: itself and ours
    assert page.locator("#stat-requests").count() == 0  # the whole gateway's traffic is not its to see
    page.goto(console(gateway, f"clients?q={tenant}"))
    listed = page.locator("#clients").inner_text()
    assert f"ours-{tenant}" in listed and f"theirs-{tenant}" not in listed
    screenshot(page, "tenant-admin-clients")

    page.goto(console(gateway, f"clients/{ours}"))
    assert page.locator("#add-key").count() == 1
    assert page.locator("#assign").count() == 0  # tenant admins write no records: not offered
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")

    response = page.goto(console(gateway, f"clients/{theirs_id}"))
    assert response.status == 404

    # Forced, with a valid session and CSRF token: refused all the same.
    key_id = theirs_key.split(".")[1]
    forced = page.request.post(
        console(gateway, f"clients/{theirs_id}/keys/{key_id}/revoke"), form={"csrf": csrf}
    )
    assert forced.status == 404
    forced = page.request.post(
        console(gateway, "roles"), form={"csrf": csrf, "role_id": "x", "actions": "gateway:*", "grant": "yes"}
    )
    assert forced.status == 403
    assert proxy_status(gateway, theirs_key) != 401  # their key still works
    assert api.get("/v1/roles/x").status_code == 404


def test_forms_without_the_csrf_token_are_refused(context: Any, gateway: Gateway) -> None:
    assert gateway.admin_key is not None
    page = context.new_page()
    sign_in(page, gateway, gateway.admin_key)
    name = f"forged-{uuid.uuid4().hex[:6]}"
    for form in ({"name": name}, {"name": name, "csrf": "not-the-token"}):
        forged = page.request.post(console(gateway, "clients"), form=form)
        assert forged.status == 403, forged.status
        assert "CSRF" in forged.text()
    listed = gateway.admin().get("/v1/clients", params={"limit": 100}).json()["clients"]
    assert name not in {c["name"] for c in listed}


def test_sign_out_ends_the_session_on_the_server(context: Any, gateway: Gateway) -> None:
    assert gateway.admin_key is not None
    page = context.new_page()
    sign_in(page, gateway, gateway.admin_key)
    cookie = context.cookies()[0]["value"]
    page.click("#sign-out")
    page.wait_for_url(console(gateway, "sign-in"))
    # The old cookie, replayed by hand, opens nothing on any worker.
    with httpx.Client(cookies={"gateway_console": cookie}) as client:
        for _ in range(4):
            answer = client.get(console(gateway))
            assert answer.status_code == 303 and answer.headers["location"].endswith("/console/sign-in")


def test_revoking_the_admin_key_ends_its_session(context: Any, gateway: Gateway) -> None:
    admin_id, admin_key = new_admin(gateway)
    page = context.new_page()
    sign_in(page, gateway, admin_key)
    page.goto(console(gateway, "clients"))
    assert page.url == console(gateway, "clients")
    revoked = gateway.admin().delete(f"/v1/clients/{admin_id}/access-keys/{admin_key.split('.')[1]}")
    assert revoked.status_code == 204
    started = time.monotonic()
    while page.url != console(gateway, "sign-in"):
        assert time.monotonic() - started < 1.0, "the session outlived its key by a second"
        page.goto(console(gateway, "clients"))


def test_sign_in_with_a_client_secret_and_the_refusals(context: Any, gateway: Gateway) -> None:
    api = gateway.admin()
    admin_id, _ = new_admin(gateway)
    secret = api.create_secret(admin_id)["clientSecret"]
    page = context.new_page()
    sign_in(page, gateway, secret)
    assert admin_id in page.locator(".signed-in").inner_text()
    # Disabling the client ends the session.
    assert api.patch(f"/v1/clients/{admin_id}", json={"disabled": True}).status_code == 200
    started = time.monotonic()
    while page.url != console(gateway, "sign-in"):
        assert time.monotonic() - started < 1.0
        page.goto(console(gateway))

    _, plain_key = api.new_client_with_key()
    for credential, message in (
        (plain_key, "holds no admin permission"),
        (plain_key[:-4] + "AAAA", "not valid"),
        (secret, "not valid"),  # its client is disabled now
        ("gwcs_sec_0000000000000000_" + "a" * 38, "not valid"),
    ):
        page.goto(console(gateway, "sign-in"))
        page.fill("#credential", credential)
        page.click("#sign-in")
        page.wait_for_selector(".alert.error")
        assert message in page.locator(".alert.error").inner_text()
        assert page.url == console(gateway, "sign-in")
    screenshot(page, "sign-in-refused")


def test_security_headers_and_cookie_flags(gateway: Gateway) -> None:
    assert gateway.admin_key is not None
    with httpx.Client() as client:
        form = client.get(console(gateway, "sign-in"))
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        signed = client.post(
            console(gateway, "sign-in"), data={"csrf": csrf.group(1), "credential": gateway.admin_key}
        )
        assert signed.status_code == 303
        cookie = next(
            v for k, v in signed.headers.multi_items() if k == "set-cookie" and "gateway_console=" in v
        )
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
        assert "Secure" not in cookie  # plain http here; under https the cookie is Secure
        for path in ("", "clients", "static/console.css", "no-such-page"):
            answer = client.get(console(gateway, path))
            csp = answer.headers["content-security-policy"]
            assert (
                "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            )
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["referrer-policy"] == "no-referrer"
        assert client.get(console(gateway, "clients")).headers["cache-control"] == "no-store"
        assert client.get(console(gateway, "no-such-page")).status_code == 404
        # A sign-in form posted without its own token (login CSRF) is refused.
        fresh = httpx.post(console(gateway, "sign-in"), data={"credential": gateway.admin_key})
        assert fresh.status_code == 403


def test_trusted_identities_page(context: Any, gateway: Gateway) -> None:
    assert gateway.admin_key is not None
    api = gateway.admin()
    client_id = api.create_client()["clientId"]
    page = context.new_page()
    sign_in(page, gateway, gateway.admin_key)
    page.goto(console(gateway, "identities"))
    form = page.locator("#create-identity")
    form.locator("input[name=issuer]").fill("https://ci.example.test")
    form.locator("input[name=audience]").fill("https://gateway.example.test")
    form.locator("input[name=client_id]").fill(client_id)
    form.locator("textarea[name=conditions]").fill("sub=repo:acme/deploy:ref:refs/heads/main")
    form.locator("button[type=submit]").click()
    page.wait_for_url(console(gateway, "identities"))
    row = page.locator("#identities tr", has_text=client_id)
    identity_id = row.locator("code").first.inner_text()
    assert "repo:acme/deploy:ref:refs/heads/main" in row.inner_text()
    stored = api.get(f"/v1/identities/{identity_id}").json()
    assert stored["clientId"] == client_id and stored["issuer"] == "https://ci.example.test"
    screenshot(page, "identities")

    # A condition that pins nothing is refused with the API's own words, as a page.
    form.locator("input[name=issuer]").fill("https://ci.example.test")
    form.locator("input[name=audience]").fill("https://gateway.example.test")
    form.locator("input[name=client_id]").fill(client_id)
    form.locator("textarea[name=conditions]").fill("sub=*")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#error-description")
    assert "conditions" in page.locator("#error-description").inner_text()

    page.goto(console(gateway, "identities"))
    page.locator("#identities tr", has_text=client_id).locator("button", has_text="Delete").click()
    page.wait_for_url(console(gateway, "identities"))
    assert api.get(f"/v1/identities/{identity_id}").status_code == 404


def test_connections_page_never_shows_a_secret(context: Any, gateway: Gateway) -> None:
    assert gateway.admin_key is not None
    api = gateway.admin()
    connection_id = f"provider-{uuid.uuid4().hex[:6]}"
    secret = f"provider-secret-{uuid.uuid4().hex}"
    page = context.new_page()
    sign_in(page, gateway, gateway.admin_key)
    page.goto(console(gateway, "connections"))
    form = page.locator("#create-connection")
    form.locator("input[name=connectionId]").fill(connection_id)
    form.locator("input[name=name]").fill("Provider <i>x</i>")
    form.locator("input[name=authorizationUrl]").fill("https://provider.example.test/authorize")
    form.locator("input[name=tokenUrl]").fill("https://provider.example.test/token")
    form.locator("input[name=clientId]").fill("gateway-app")
    form.locator("input[name=clientSecret]").fill(secret)
    form.locator("input[name=scopes]").fill("repo read:user")
    form.locator("button[type=submit]").click()
    page.wait_for_url(console(gateway, "connections"))
    row = page.locator("#connections tr", has_text=connection_id)
    assert "secret sealed" in row.inner_text() and "Provider <i>x</i>" in row.inner_text()
    assert secret not in page.content()
    stored = api.get(f"/v1/connections/{connection_id}")
    assert stored.status_code == 200 and secret not in stored.text
    screenshot(page, "connections")
    row.locator("button", has_text="Delete").click()
    page.wait_for_url(console(gateway, "connections"))
    assert api.get(f"/v1/connections/{connection_id}").status_code == 404


def test_client_search_and_pages(context: Any, gateway: Gateway) -> None:
    assert gateway.admin_key is not None
    api = gateway.admin(keep_alive=True)
    marker = f"paged{uuid.uuid4().hex[:6]}"
    try:
        made = {api.create_client(f"{marker}-{i:02d}")["clientId"] for i in range(27)}
    finally:
        api.close()
    page = context.new_page()
    sign_in(page, gateway, gateway.admin_key)
    page.goto(console(gateway, "clients"))
    page.fill("#search", marker.upper())  # any case
    page.press("#search", "Enter")
    page.wait_for_url(re.compile(r".*/console/clients\?q="))
    first = set(page.locator("#clients tbody tr td:nth-child(2)").all_inner_texts())
    assert len(first) == 25 and first <= made
    page.click("#next-page")
    page.wait_for_load_state()
    second = set(page.locator("#clients tbody tr td:nth-child(2)").all_inner_texts())
    assert first | second == made and not first & second
    assert page.locator("#next-page").count() == 0


def test_what_a_reader_may_not_do_is_not_offered_and_refused(context: Any, gateway: Gateway) -> None:
    api = gateway.admin()
    reader_id, reader_key = api.new_client_with_key()
    role = api.create_role(["gateway:clients:read", "gateway:roles:read"])
    api.create_record([reader_id], [role], ["/gateway"])
    target_id, target_key = api.new_client_with_key()
    page = context.new_page()
    sign_in(page, gateway, reader_key)
    nav = page.locator("nav.side").inner_text()
    assert "Roles" in nav and "Access records" not in nav and "Signing keys" not in nav
    page.goto(console(gateway, f"clients/{target_id}"))
    for absent in ("#add-key", "#add-secret", "#assign", "#edit-client", "#access-keys button"):
        assert page.locator(absent).count() == 0, absent
    page.goto(console(gateway, "roles"))
    assert page.locator("#create-role").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    key_id = target_key.split(".")[1]
    for path, form in (
        (f"clients/{target_id}/keys", {}),
        (f"clients/{target_id}/keys/{key_id}/revoke", {}),
        ("clients", {"name": "not-made"}),
        ("signing-keys/rotate", {"confirm": "rotate", "now": "yes"}),
    ):
        forced = page.request.post(console(gateway, path), form={"csrf": csrf, **form})
        assert forced.status == 403, (path, forced.status)
        assert "is needed" in forced.text()
    assert page.goto(console(gateway, "signing-keys")).status == 403
    assert proxy_status(gateway, target_key) != 401  # the key was not revoked
