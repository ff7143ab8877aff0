"""The web UI's login through the identity provider, at the HTTP level, against the real
provider: the button, the redirect page, the outcomes as after a password, and every
failure as the Log in page's alert (never a 500, never a session)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.http.conftest import PASSWORD
from tests.oidc.browser import ORIGIN, Browser, csrf_token
from tests.oidc.conftest import Federation
from tests.oidc.harness import OTHER_REDIRECT_URI, OTHER_TENANT, REDIRECT_URI
from tests.oidc.test_failures import failures, users, with_query

COULD_NOT = "Could not log in with Microsoft"


def test_the_login_page_says_password_login_is_disabled(connected: Federation) -> None:
    api = connected.api
    assert api.create_user("bob").status_code == 201
    client = api.client
    form = client.get("/ui/acme/login")
    assert form.status_code == 200

    wrong = client.post(
        "/ui/acme/login",
        data={"username": "bob", "password": "not bob's", "csrf_token": csrf_token(form.text)},
    )
    right = client.post(
        "/ui/acme/login",
        data={"username": "bob", "password": PASSWORD, "csrf_token": csrf_token(form.text)},
    )

    assert wrong.status_code == 401
    assert "Invalid username or password" in wrong.text
    assert right.status_code == 403
    assert "Password login is disabled" in right.text
    assert "Invalid username or password" not in right.text


def test_the_button_is_there_only_with_a_provider(federation: Federation) -> None:
    browser = Browser.open(federation)
    before = browser.get("/login")
    assert federation.connect(display_name="Contoso Entra").status_code == 200
    after = browser.get("/login")

    assert "Log in with" not in before.text
    assert "form-action 'self';" in before.headers["content-security-policy"]
    assert ">Log in with Contoso Entra</button>" in after.text
    assert 'action="/ui/acme/login/oidc/start"' in after.text
    # The button's form is redirected to the provider: the page's CSP lets it go there.
    provider_origin = federation.provider.base_url
    assert f"form-action 'self' {provider_origin};" in after.headers["content-security-policy"]


def test_the_button_starts_the_authorization_request_with_the_redirect_page(
    connected: Federation,
) -> None:
    browser = Browser.open(connected)

    started = browser.start()

    assert started.status_code == 303
    location = started.headers["location"]
    assert location.startswith(connected.provider.base_url)
    query = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
    assert query["redirect_uri"] == REDIRECT_URI == f"{ORIGIN}/ui/acme/login/oidc"
    assert query["code_challenge_method"] == "S256"
    assert query["response_type"] == "code"
    assert {"state", "nonce", "code_challenge"} <= query.keys()
    cookie = started.headers["set-cookie"]
    assert cookie.startswith("aero_oidc=")
    assert query["state"] not in cookie  # sealed
    for flag in ("HttpOnly", "Secure", "Path=/ui/acme/login/oidc", "SameSite=lax"):
        assert flag.lower() in cookie.lower()


def test_the_login_without_csrf_token_is_refused(connected: Federation) -> None:
    browser = Browser.open(connected)
    browser.get("/login")

    response = browser.client.post("/ui/acme/login/oidc/start", data={})

    assert response.status_code == 403
    assert [e for e in connected.audit() if e["type"] == "login_federated_started"] == []


def test_a_login_through_the_provider_ends_on_the_home_page(connected: Federation) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    browser = Browser.open(connected)

    back = browser.come_back(browser.log_in_at_provider(subject))

    assert back.status_code == 303
    assert back.headers["location"] == "/ui/acme/"
    assert browser.home_says() == "carol"
    entries = [(e["type"], e["username"], e["user_agent"]) for e in connected.audit()[-3:]]
    assert entries == [
        ("identity_linked", "carol", "Browser/1.0"),
        ("login_federated_succeeded", "carol", "Browser/1.0"),
        ("login_succeeded", "carol", "Browser/1.0"),
    ]


@pytest.mark.parametrize(
    ("mode", "amr", "page"),
    [
        ("aero", None, "/ui/acme/login/register"),
        ("amr", ["pwd"], "/ui/acme/login/register"),
        ("amr", ["pwd", "mfa"], "/ui/acme/"),
        ("provider", None, "/ui/acme/"),
    ],
)
def test_with_2fa_required_the_mode_says_what_follows(
    federation: Federation, mode: str, amr: list[str] | None, page: str
) -> None:
    assert federation.connect(two_factor=mode).status_code == 200
    assert federation.api.set_policy(True).status_code == 200
    claims = {"amr": amr} if amr else {}
    subject = federation.provider.account("carol-sub", preferred_username="carol", **claims)
    browser = Browser.open(federation)

    back = browser.come_back(browser.log_in_at_provider(subject))

    assert (back.status_code, back.headers["location"]) == (303, page)
    if page.endswith("/register"):
        registration = browser.client.get(page)
        assert registration.status_code == 200
        assert "Register for 2FA" in registration.text
        assert browser.get("/").status_code == 303  # no session before the code
    else:
        assert browser.home_says() == "carol"


def test_a_user_with_an_authenticator_gets_the_code_step(federation: Federation) -> None:
    api = federation.api
    assert api.create_user("bob").status_code == 201
    assert api.set_policy(True).status_code == 200
    enrolment = api.enrol("bob")  # with a password, before the provider is connected
    assert federation.connect().status_code == 200
    linked = api.client.put(
        api.url("/users/bob/identity"), json={"subject": "bob-sub"}, headers=api.admin
    )
    assert linked.status_code == 200, linked.text
    federation.provider.account("bob-sub")
    browser = Browser.open(federation)

    back = browser.come_back(browser.log_in_at_provider("bob-sub"))
    assert back.headers["location"] == "/ui/acme/login/two-factor"
    api.next_step()  # the enrolment used this step's code
    code = api.code(enrolment.secret)
    verified = browser.post("/login/two-factor", "/login/two-factor", code=code)

    assert verified.status_code == 303, verified.text
    assert browser.home_says() == "bob"


# ----- failures -----


def assert_could_not(response: object, status: int, reason: str) -> None:
    """The Log in page with the alert: no session, no step after it."""
    assert response.status_code == status  # type: ignore[attr-defined]
    text = response.text  # type: ignore[attr-defined]
    assert '<div class="alert alert-error" role="alert"><p>Could not log in with Microsoft:' in text
    assert reason in text
    assert "aero_session" not in response.headers.get("set-cookie", "")  # type: ignore[attr-defined]
    assert "/ui/acme/login/" not in response.headers.get("location", "")  # type: ignore[attr-defined]


def test_a_state_this_browser_did_not_start_is_refused_and_ends_that_login(
    connected: Federation,
) -> None:
    """Login CSRF: mallory's own answer, sent to carol's browser, does not log carol
    in as mallory; nor can mallory use it afterwards."""
    provider = connected.provider
    provider.account("mallory-sub", preferred_username="mallory")
    mallory = Browser.open(connected, "Mallory/1.0")
    carol = Browser.open(connected)
    answer = mallory.log_in_at_provider("mallory-sub")

    foreign = carol.come_back(answer)
    later = mallory.come_back(answer)

    assert_could_not(foreign, 401, "was started in another browser")
    assert carol.get("/").status_code == 303
    assert_could_not(later, 401, "was used already")
    reasons = [f["reason"] for f in failures(connected)]
    assert reasons == ["state_not_bound", "state_used"]
    assert users(connected) == ["alice"]


def test_an_answer_sent_twice_is_refused_the_second_time(connected: Federation) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol")
    browser = Browser.open(connected)
    answer = browser.log_in_at_provider(subject)
    assert browser.come_back(answer).status_code == 303

    replayed = browser.come_back(answer)

    assert_could_not(replayed, 401, "was used already")


def test_a_redirect_page_without_state_is_refused(connected: Federation) -> None:
    response = Browser.open(connected).get("/login/oidc", code="anything")

    assert_could_not(response, 401, "Try again.")
    assert failures(connected)[-1]["reason"] == "state_not_bound"


def test_an_error_from_the_provider_is_said_without_its_description(
    connected: Federation,
) -> None:
    browser = Browser.open(connected)
    started = browser.start()
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]

    response = browser.come_back(
        {"state": state, "error": "access_denied", "error_description": "AADSTS50105 note"}
    )

    assert_could_not(response, 401, "the identity provider did not let you in")
    assert "AADSTS50105" not in response.text
    assert failures(connected)[-1]["reason"] == "provider_error:access_denied"


@pytest.mark.parametrize(
    ("claims", "rewrite", "reason"),
    [
        ({"tid": OTHER_TENANT}, {}, "wrong_tenant"),
        ({}, {"nonce": "injected"}, "wrong_nonce"),
    ],
)
def test_an_id_token_failing_a_check_is_refused(
    connected: Federation, claims: dict[str, str], rewrite: dict[str, str], reason: str
) -> None:
    subject = connected.provider.account("carol-sub", preferred_username="carol", **claims)
    browser = Browser.open(connected)
    started = browser.start()
    url = with_query(started.headers["location"], **rewrite) if rewrite else None
    answer = connected.provider.authorize(url or started.headers["location"], subject)

    response = browser.come_back(answer)

    assert_could_not(response, 401, "its answer could not be verified")
    assert failures(connected)[-1]["reason"] == reason


def test_a_provider_that_does_not_answer_is_said_so(connected: Federation) -> None:
    provider = connected.provider
    subject = provider.account("carol-sub", preferred_username="carol")
    browser = Browser.open(connected)
    answer = browser.log_in_at_provider(subject)
    provider.control("hang", {"paths": ["/token"]})
    try:
        response = browser.come_back(answer)
    finally:
        provider.control("hang", {"paths": []})

    assert_could_not(response, 502, "the identity provider did not answer")
    assert failures(connected)[-1]["reason"] == "provider_unavailable"


def test_a_name_taken_and_an_unlinked_subject_are_said_so(connected: Federation) -> None:
    api = connected.api
    assert api.create_user("bob").status_code == 201
    provider = connected.provider
    provider.account("other-bob", preferred_username="bob")
    browser = Browser.open(connected)

    taken = browser.come_back(browser.log_in_at_provider("other-bob"))
    assert connected.connect(provisioning="none").status_code == 200
    provider.account("carol-sub", preferred_username="carol")
    unlinked = browser.come_back(browser.log_in_at_provider("carol-sub"))

    assert_could_not(taken, 409, "a user here has the same name")
    assert_could_not(unlinked, 403, "your account is not set up here")


def test_a_page_address_that_is_not_a_redirect_uri_is_said_so(federation: Federation) -> None:
    assert federation.connect(redirect_uris=[OTHER_REDIRECT_URI]).status_code == 200

    browser = Browser.open(federation)
    response = browser.start()

    assert response.status_code == 422
    assert f"{COULD_NOT}: this address is not one of the provider" in response.text
    assert not browser.client.cookies.get("aero_oidc")
