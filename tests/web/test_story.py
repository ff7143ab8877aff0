"""The product page's story in Chromium, end to end, on SQLite and on PostgreSQL.

The admin requires 2FA for finance in Environment settings; bob registers by
scanning the QR code from the screen, keeps his recovery codes, and from then on
is asked for a code; carol (sales) needs only her password; the admin resets
bob, who registers again; the auditor filters the audit log and exports it.
"""

from __future__ import annotations

import pytest

from tests.web.conftest import Server
from tests.web.steps import NewContext, run_story

pytestmark = pytest.mark.slow


def test_the_seed_story_in_the_browser(server: Server, new_context: NewContext) -> None:
    run_story(server, new_context(), screenshots=server.kind == "sqlite")
