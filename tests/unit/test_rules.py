"""Pure rules: who must use 2FA (API.md "Meaning"), names, groups and roles."""

from __future__ import annotations

from uuid import NAMESPACE_URL, uuid5

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInputError
from domain.rules import (
    environment_id,
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
