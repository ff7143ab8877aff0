"""Pure rules: names, groups, roles, and who must use two-factor authentication."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.errors import InvalidInputError

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
ROLES = frozenset({"admin", "auditor"})
MAX_NAME = 64

# Deterministic ids make "create twice" fail atomically in the store itself:
# the second insert of version 1 of the same aggregate is a conflict.
_NAMESPACE = uuid5(NAMESPACE_URL, "https://aero-auth/ids")


def environment_id(slug: str) -> UUID:
    return uuid5(_NAMESPACE, f"environment/{slug}")


def user_id(slug: str, username: str) -> UUID:
    return uuid5(_NAMESPACE, f"user/{slug}/{username_key(username)}")


def username_key(username: str) -> str:
    """Usernames compare case-insensitively: NFC, then casefold (API.md)."""
    return unicodedata.normalize("NFC", username).casefold()


def has_control_characters(value: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in value)


def valid_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG.fullmatch(slug):
        raise InvalidInputError("slug", "must match ^[a-z0-9][a-z0-9-]{1,62}$")
    return slug


def valid_username(username: str) -> str:
    if not isinstance(username, str):
        raise InvalidInputError("username", "must be a string")
    username = unicodedata.normalize("NFC", username)
    if not 1 <= len(username) <= MAX_NAME:
        raise InvalidInputError("username", "must be 1 to 64 characters")
    if has_control_characters(username):
        raise InvalidInputError("username", "must not contain control characters")
    if ":" in username:
        raise InvalidInputError("username", "must not contain ':'")
    return username


def valid_display_name(display_name: str) -> str:
    if not isinstance(display_name, str):
        raise InvalidInputError("display_name", "must be a string")
    display_name = unicodedata.normalize("NFC", display_name).strip()
    if not 1 <= len(display_name) <= 128:
        raise InvalidInputError("display_name", "must be 1 to 128 characters")
    if has_control_characters(display_name):
        raise InvalidInputError("display_name", "must not contain control characters")
    return display_name


def valid_issuer(issuer: str) -> str:
    if not isinstance(issuer, str):
        raise InvalidInputError("issuer", "must be a string")
    issuer = unicodedata.normalize("NFC", issuer).strip()
    if not 1 <= len(issuer) <= MAX_NAME:
        raise InvalidInputError("issuer", "must be 1 to 64 characters")
    if ":" in issuer:
        # The Key Uri Format separates issuer and account with ':'.
        raise InvalidInputError("issuer", "must not contain ':'")
    if has_control_characters(issuer):
        raise InvalidInputError("issuer", "must not contain control characters")
    return issuer


def valid_groups(groups: Iterable[str]) -> frozenset[str]:
    if isinstance(groups, str):
        # frozenset("finance") would silently become the groups f, i, n, a, c, e.
        raise InvalidInputError("groups", "must be a list of group names, not one string")
    result = frozenset(groups)
    for group in result:
        if not isinstance(group, str) or not 1 <= len(group) <= MAX_NAME:
            raise InvalidInputError("groups", "each group must be 1 to 64 characters")
        if has_control_characters(group):
            raise InvalidInputError("groups", "groups must not contain control characters")
    return result


def valid_roles(roles: Iterable[str]) -> frozenset[str]:
    if isinstance(roles, str):
        raise InvalidInputError("roles", "must be a list of roles, not one string")
    result = frozenset(roles)
    unknown = sorted(result - ROLES)
    if unknown:
        raise InvalidInputError("roles", f"unknown roles {unknown}; roles are admin, auditor")
    return result


def valid_reason(reason: str) -> str:
    if not isinstance(reason, str):
        raise InvalidInputError("reason", "must be a string")
    reason = reason.strip()
    if not 1 <= len(reason) <= 500:
        raise InvalidInputError("reason", "must be 1 to 500 characters")
    return reason


def requiring_rule(
    require_2fa: bool, selected_groups: frozenset[str], user_groups: frozenset[str]
) -> str | None:
    """Why two-factor authentication is required for a user, or None if it is not.

    API.md, "Meaning": off for nobody; on with no groups for everyone; on with
    groups for members of at least one of them. The rule names the first
    matching group in sorted order, so the answer is stable.
    """
    if not require_2fa:
        return None
    if not selected_groups:
        return "all"
    matching = sorted(selected_groups & user_groups)
    return f"group:{matching[0]}" if matching else None
