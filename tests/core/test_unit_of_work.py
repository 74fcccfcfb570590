"""A request's unit of work commits before its answer is sent: a commit that fails is answered as a failure.

Before, the commit ran after the response had gone (FastAPI's default scope for a dependency with yield), so a
client could be told "201 created" for a write the database then refused.
"""
from __future__ import annotations

from sqlalchemy import func, select

from ingot.core import auth
from ingot.core.audit import AuditEntry
from ingot.registry.models import EnterpriseGroup
from tests.conftest import commits_refused, login

PASSWORD = "correct-horse-42"
GROUP = "云南冶金集团"


def stored(session) -> tuple[int, int]:
    session.rollback()
    groups = session.scalar(select(func.count()).select_from(EnterpriseGroup).where(EnterpriseGroup.name == GROUP))
    audited = session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.entity == "group"))
    return groups, audited


def test_a_write_whose_commit_fails_is_answered_as_failed_and_leaves_nothing(client, session):
    auth.create_user(session, username="root", password=PASSWORD, role=auth.ADMIN)
    session.commit()
    headers = login(client, "root", PASSWORD)

    with commits_refused() as refused:
        response = client.post("/api/registry/groups", json={"name": GROUP}, headers=headers)
    assert refused, "the request's commit was never attempted"
    assert response.status_code == 503, response.text
    assert response.json()["detail"][0]["code"] == "busy"
    assert response.headers["Retry-After"] == "1"
    assert stored(session) == (0, 0)

    # The same request, once the database accepts commits again, is carried out and answered as done.
    again = client.post("/api/registry/groups", json={"name": GROUP}, headers=headers)
    assert again.status_code == 201, again.text
    groups, audited = stored(session)
    assert groups == 1 and audited >= 1
