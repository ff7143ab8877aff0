"""Read models over the ``app`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from application.service import AeroAuth
from interfaces.settings import Settings
from projections.live import LiveReadModels

# Re-exported: tests import these from here too.
from tests.projections.helpers import login_challenge as login_challenge
from tests.projections.helpers import make_environment as make_environment
from tests.projections.helpers import toggle_groups as toggle_groups
from tests.projections.helpers import wrong_code as wrong_code
from tests.support import ADMIN as ADMIN
from tests.support import ADMIN_PASSWORD as ADMIN_PASSWORD
from tests.support import PASSWORD as PASSWORD
from tests.support import caught_up as caught_up
from tests.support import code_at as code_at
from tests.support import live_read_models as live_read_models
from tests.support import raw_sql as raw_sql
from tests.support import register as register


@pytest.fixture
def read_models(app: AeroAuth, settings: Settings) -> Iterator[LiveReadModels]:
    models = live_read_models(app, settings, poll_interval=0.05)
    models.start()
    try:
        yield models
    finally:
        models.close()
