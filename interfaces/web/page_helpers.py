"""What several pages of the web UI share: page sizes, filters, read models, groups, rules."""

from __future__ import annotations

from interfaces.web.context import (
    PageError,
    Web,
)
from interfaces.web.i18n import _
from projections.api import ReadModels

PAGE_SIZE = 50


def page_size(limit: int | None) -> int:
    """``?limit=`` as the API takes it (1-1000), kept in the Next page link."""
    return PAGE_SIZE if limit is None else min(max(limit, 1), 1000)


SHOW = {
    "all": _("All users"),
    "required": _("2FA required"),
    "registered": _("2FA registered"),
    "required_unregistered": _("Required, not registered"),
}


def queries(web: Web) -> ReadModels:
    if web.services.read_models is None:
        raise PageError(
            503, _("Unavailable"), _("This server runs without its read models. Try again later.")
        )
    return web.services.read_models


def group_list(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def rule_in_words(rule: str | None) -> str | None:
    if rule is None:
        return None
    if rule == "all":
        return _("the environment requires 2FA of every user")
    return _("the environment requires 2FA of the group %(group)s") % {
        "group": rule.removeprefix("group:")
    }
