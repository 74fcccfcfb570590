from __future__ import annotations

import pytest

from tests.policy_db.world import add_users, build_policy_world


@pytest.fixture
def world(session):
    """The policy test registry, committed so that the API and the CLI (their own sessions) see it."""
    built = build_policy_world(session)
    add_users(session, built)
    session.commit()
    return built
