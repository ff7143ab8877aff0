"""Pure rules: who must use 2FA (API.md "Meaning"), names, groups and roles."""

from __future__ import annotations

from uuid import NAMESPACE_URL, uuid5

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInputError
from domain.rules import (
    MAX_NAME,
    environment_id,
    may_name_a_user,
    precis_username,
    recorded_username,
    requiring_rule,
    user_id,
    valid_groups,
    valid_issuer,
    valid_roles,
    valid_slug,
    valid_username,
)

FINANCE = frozenset({"finance"})


def test_nobody_is_required_when_the_checkbox_is_off() -> None:
    assert requiring_rule(False, frozenset(), FINANCE) is None
    assert requiring_rule(False, FINANCE, FINANCE) is None


def test_everyone_is_required_when_the_checkbox_is_on_without_groups() -> None:
    assert requiring_rule(True, frozenset(), frozenset()) == "all"
    assert requiring_rule(True, frozenset(), FINANCE) == "all"


def test_members_of_a_selected_group_are_required() -> None:
    assert requiring_rule(True, frozenset({"finance", "hr"}), FINANCE) == "group:finance"


def test_users_outside_the_selected_groups_are_not_required() -> None:
    assert requiring_rule(True, FINANCE, frozenset({"sales"})) is None
    assert requiring_rule(True, FINANCE, frozenset()) is None


# A small alphabet so that selected and user groups overlap often.
group_sets = st.frozensets(st.sampled_from(["finance", "hr", "sales", "Finance", "ops"]))


@given(require=st.booleans(), selected=group_sets, user_groups=group_sets)
def test_requiring_rule_means_what_the_api_says(
    require: bool, selected: frozenset[str], user_groups: frozenset[str]
) -> None:
    rule = requiring_rule(require, selected, user_groups)

    required = require and (not selected or bool(selected & user_groups))
    assert (rule is not None) == required
    if rule is not None and selected:
        group = rule.removeprefix("group:")
        assert rule.startswith("group:")
        assert group in selected & user_groups
    if rule is not None and not selected:
        assert rule == "all"


@pytest.mark.parametrize("slug", ["acme", "a1", "acme-2", "0a", "a" * 63])
def test_accepts_slugs_of_lowercase_letters_digits_and_dashes(slug: str) -> None:
    assert valid_slug(slug) == slug


@pytest.mark.parametrize("slug", ["a", "-acme", "Acme", "ac_me", "acme!", "a" * 64, "", None])
def test_refuses_other_slugs_saying_why(slug: object) -> None:
    with pytest.raises(InvalidInputError) as error:
        valid_slug(slug)  # type: ignore[arg-type]
    assert error.value.field == "slug"


@pytest.mark.parametrize("username", ["", "a" * 65, "bob:admin", "bob\nadmin", "bob\x00", None, 7])
def test_refuses_usernames_that_are_empty_too_long_or_hold_colons_or_controls(
    username: object,
) -> None:
    with pytest.raises(InvalidInputError) as error:
        valid_username(username)  # type: ignore[arg-type]
    assert error.value.field == "username"


@pytest.mark.parametrize(
    "username",
    [
        "\uff42\uff4f\uff42",  # full-width bob
        "\uff71\uff98\uff7d",  # half-width katakana
        "bob\u200b",  # zero-width space
        "\u200dbob",  # zero-width joiner
        "\u202ebob",  # right-to-left override
        "bob\u2066",  # left-to-right isolate
        " bob",
        "bob ",
        "bob smith",
        "bob\u00a0",  # no-break space
        "\u2168",  # roman numeral nine, a compatibility form of "IX"
    ],
)
def test_refuses_invisible_bidi_space_and_width_variants_of_names(username: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        valid_username(username)
    assert error.value.field == "username"


@pytest.mark.parametrize(
    "username",
    ["bob", "Bob", "alice.b-c_d@example.com", "Ren\u00e9", "Stra\u00dfe", "\u0391\u03c3\u03c2"],
)
def test_accepts_precis_usernames_and_shows_them_as_created(username: str) -> None:
    assert valid_username(username) == username


# Letters, digits, symbols and marks from several scripts, with the cases that
# differ between casefold and toLowerCase (sigma, sharp s, dotted I).
names = st.text(
    alphabet=st.one_of(
        st.sampled_from("\u03a3\u03c3\u03c2\u00df\u1e9e\u0130\u0131iIkK\u212a\u00c5\u212b_.-@"),
        st.characters(categories=["Lu", "Ll", "Lt", "Lo", "Nd", "Mn", "Sm", "Po"]),
    ),
    min_size=1,
    max_size=MAX_NAME,
)


@given(username=names)
def test_names_precis_counts_as_one_user_are_one_user(username: str) -> None:
    # Ids stay uuid5 of the old key; for every name accepted, the name and its
    # PRECIS form share that key, so PRECIS-equal names share an id.
    try:
        valid_username(username)
    except InvalidInputError:
        return
    assert user_id("acme", username) == user_id("acme", precis_username(username))


def test_a_login_name_is_recorded_cut_to_the_longest_name() -> None:
    assert recorded_username("b" * 65_536) == "b" * MAX_NAME
    assert recorded_username("bob") == "bob"
    assert may_name_a_user("e\u0301" * MAX_NAME)  # 64 characters after NFC
    assert not may_name_a_user("b" * (MAX_NAME + 1))
    assert not may_name_a_user("")


def test_usernames_compare_case_insensitively_after_nfc() -> None:
    assert user_id("acme", "Bob") == user_id("acme", "bob")
    assert user_id("acme", "Ren\u00e9") == user_id("acme", "RENE\u0301")
    assert user_id("acme", "bob") != user_id("other", "bob")


@pytest.mark.parametrize("issuer", ["", "Bizz:Stream", "a" * 65, "Bizz\nStream", None])
def test_refuses_issuers_with_colons_controls_or_bad_lengths(issuer: object) -> None:
    with pytest.raises(InvalidInputError) as error:
        valid_issuer(issuer)  # type: ignore[arg-type]
    assert error.value.field == "issuer"


@pytest.mark.parametrize("groups", [[""], ["g" * 65], ["fin\tance"], "finance", [None]])
def test_refuses_groups_that_are_not_a_list_of_1_to_64_printable_characters(
    groups: object,
) -> None:
    with pytest.raises(InvalidInputError) as error:
        valid_groups(groups)  # type: ignore[arg-type]
    assert error.value.field == "groups"


def test_refuses_more_than_a_hundred_groups() -> None:
    assert len(valid_groups([f"g{i}" for i in range(100)] * 2)) == 100
    with pytest.raises(InvalidInputError, match="at most 100"):
        valid_groups([f"g{i}" for i in range(101)])


def test_groups_are_case_sensitive_and_deduplicated() -> None:
    assert valid_groups(["finance", "Finance", "finance"]) == frozenset({"finance", "Finance"})


def test_roles_are_a_subset_of_admin_and_auditor() -> None:
    assert valid_roles(["admin", "auditor"]) == frozenset({"admin", "auditor"})
    with pytest.raises(InvalidInputError) as error:
        valid_roles(["owner"])
    assert "owner" in str(error.value)


def test_ids_are_the_uuid5_of_the_names_so_stored_histories_keep_their_ids() -> None:
    namespace = uuid5(NAMESPACE_URL, "https://aero-auth/ids")
    assert environment_id("acme") == uuid5(namespace, "environment/acme")
    assert user_id("acme", "BOB") == uuid5(namespace, "user/acme/bob")
    # NFC first: "é" typed as e + combining acute is the same user.
    assert user_id("acme", "Ren\u0065\u0301") == uuid5(namespace, "user/acme/ren\u00e9")
    assert user_id("acme", "Bob") == user_id("acme", "bob")
