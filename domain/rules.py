"""Pure rules: names, groups, roles, and who must use two-factor authentication."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from uuid import NAMESPACE_URL, UUID, uuid5

from precis_i18n import get_profile

from domain.errors import InvalidInputError

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
ROLES = frozenset({"admin", "auditor"})
MAX_NAME = 64
# Limits on what a client may have recorded in an event (README, "Limits"):
# names and groups 64 characters, a display name 128, a reset's reason 500,
# at most MAX_GROUPS groups per user or policy, a user agent 512 (cut, not
# refused: interfaces/http/middleware.py). An unknown user's login keeps at
# most MAX_NAME characters of the name typed (recorded_username).
MAX_GROUPS = 100

# Deterministic ids make "create twice" fail atomically in the store itself:
# the second insert of version 1 of the same aggregate is a conflict.
_NAMESPACE = uuid5(NAMESPACE_URL, "https://aero-auth/ids")


def environment_id(slug: str) -> UUID:
    return uuid5(_NAMESPACE, f"environment/{slug}")


def user_id(slug: str, username: str) -> UUID:
    return uuid5(_NAMESPACE, f"user/{slug}/{username_key(username)}")


def username_key(username: str) -> str:
    """Usernames compare case-insensitively: NFC, then casefold (API.md).

    This key names the user's aggregate (uuid5 of it), so it must not change
    for stored names. PRECIS (RFC 8265) is not used as the key: its
    UsernameCaseMapped form differs from this one (toLowerCase keeps a final
    sigma and "ß", casefold does not; width mapping turns full-width "bob" into "bob"),
    which would give existing users new ids. It is a check instead (see
    :func:`valid_username`): for every name that check accepts, the name and
    its PRECIS form have the same key here, so two names PRECIS counts as one
    user are one user here too (tests/unit/test_rules.py checks this).
    """
    return unicodedata.normalize("NFC", username).casefold()


def has_control_characters(value: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in value)


def valid_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG.fullmatch(slug):
        raise InvalidInputError("slug", "must match ^[a-z0-9][a-z0-9-]{1,62}$")
    return slug


def may_name_a_user(username: str) -> bool:
    """Whether a user could have this name: 1 to 64 characters after NFC.

    Only the length: names accepted before the PRECIS check (a space in the
    middle, say) still name their users, so a login looks them up.
    """
    return 1 <= len(unicodedata.normalize("NFC", username)) <= MAX_NAME


def recorded_username(username: str) -> str:
    """What an event may keep of a name a client typed that names no one: at most 64 characters.

    An unknown user's login is recorded (auditors look for them), but an
    unauthenticated client must not decide how much is stored.
    """
    return username[:MAX_NAME]


_USERNAME_PROFILE = get_profile("UsernameCaseMapped")


def valid_username(username: str) -> str:
    """The name as it will be shown (NFC), or InvalidInputError saying why.

    Beyond API.md's length, control characters and ':', the name must pass
    the PRECIS UsernameCaseMapped profile (RFC 8265 §3.3): no spaces,
    invisible characters (U+200B), bidi controls (U+202E) or compatibility
    forms, so no two accounts look alike. Full-width and half-width letters
    are refused too, though PRECIS would map them: full-width "bob" is a look-alike of
    "bob", and as shown it is not the name the user would type.
    """
    if not isinstance(username, str):
        raise InvalidInputError("username", "must be a string")
    username = unicodedata.normalize("NFC", username)
    if not 1 <= len(username) <= MAX_NAME:
        raise InvalidInputError("username", "must be 1 to 64 characters")
    if has_control_characters(username):
        raise InvalidInputError("username", "must not contain control characters")
    if ":" in username:
        raise InvalidInputError("username", "must not contain ':'")
    if any(_is_width_variant(ch) for ch in username):
        raise InvalidInputError("username", "must not contain full-width or half-width forms")
    try:
        _USERNAME_PROFILE.enforce(username)
    except UnicodeError as e:
        reason = getattr(e, "reason", "")
        raise InvalidInputError(
            "username",
            "must be a PRECIS username (RFC 8265): letters, digits and symbols, "
            f"no spaces, invisible or direction characters ({reason})",
        ) from None
    return username


def precis_username(username: str) -> str:
    """The PRECIS UsernameCaseMapped form of a valid name (for checks, not for ids)."""
    result: str = _USERNAME_PROFILE.enforce(username)
    return result


def _is_width_variant(ch: str) -> bool:
    return unicodedata.decomposition(ch).startswith(("<wide>", "<narrow>"))


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
    if len(result) > MAX_GROUPS:
        raise InvalidInputError("groups", f"at most {MAX_GROUPS} groups")
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
