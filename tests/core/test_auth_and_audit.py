from __future__ import annotations

import pytest
from sqlalchemy import select, text

from ingot.core import auth
from ingot.core.audit import AuditEntry, read_audit_log
from ingot.core.auth import ADMIN, AUDITOR, ENTERPRISE, REGULATOR, Principal
from ingot.core.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated
from tests.conftest import login


def test_password_is_hashed_and_verified(session):
    user = auth.create_user(session, username="reg.yn", password="s3cret-pass", role=REGULATOR, division_code="530000")
    session.commit()
    assert user.password_hash.startswith("$argon2")
    assert "s3cret-pass" not in user.password_hash
    assert auth.authenticate(session, "reg.yn", "s3cret-pass").id == user.id
    with pytest.raises(NotAuthenticated):
        auth.authenticate(session, "reg.yn", "wrong-password")


def test_user_validation_is_specific(session):
    with pytest.raises(InvalidInput) as short:
        auth.create_user(session, username="ab", password="long-enough", role=ADMIN)
    assert short.value.field == "username"
    with pytest.raises(InvalidInput) as weak:
        auth.create_user(session, username="someone", password="short", role=ADMIN)
    assert weak.value.field == "password"
    with pytest.raises(InvalidInput) as scope:
        auth.create_user(session, username="regulator", password="long-enough", role=REGULATOR)
    assert scope.value.field == "division_code"
    with pytest.raises(InvalidInput) as enterprise:
        auth.create_user(session, username="company", password="long-enough", role=ENTERPRISE)
    assert enterprise.value.field == "enterprise_id"
    auth.create_user(session, username="admin1", password="long-enough", role=ADMIN)
    with pytest.raises(Conflict):
        auth.create_user(session, username="admin1", password="long-enough", role=ADMIN)


def test_disabled_user_cannot_log_in(session):
    auth.create_user(session, username="gone", password="long-enough", role=AUDITOR)
    auth.set_disabled(session, "gone", True)
    with pytest.raises(NotAuthenticated):
        auth.authenticate(session, "gone", "long-enough")


def test_prefecture_regulator_scope():
    kunming = Principal(1, "km", REGULATOR, division_code="530100")
    yunnan = Principal(2, "yn", REGULATOR, division_code="530000")
    assert kunming.sees_division("530102") and not kunming.sees_division("530300")
    assert yunnan.sees_division("530300") and not yunnan.sees_division("510100")
    company = Principal(3, "c", ENTERPRISE, enterprise_id=7)
    assert company.sees_enterprise(7, "530100") and not company.sees_enterprise(8, "530100")


def test_every_write_is_audited_and_the_log_is_append_only(session):
    auth.create_user(session, username="auditme", password="long-enough", role=AUDITOR)
    auth.set_disabled(session, "auditme", True)
    session.commit()
    entries = session.scalars(select(AuditEntry).where(AuditEntry.entity == "user").order_by(AuditEntry.id)).all()
    assert [entry.action for entry in entries] == ["create", "disable"]
    assert entries[1].before["disabled"] is False and entries[1].after["disabled"] is True
    entries[0].action = "tampered"
    with pytest.raises(PermissionError):
        session.flush()
    session.rollback()
    entry = session.scalars(select(AuditEntry)).first()
    session.delete(entry)
    with pytest.raises(PermissionError):
        session.flush()
    session.rollback()


def test_database_refuses_audit_rewrites(session):
    auth.create_user(session, username="auditme", password="long-enough", role=AUDITOR)
    session.commit()
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(Exception):
            session.execute(text(statement))
            session.flush()
        session.rollback()
    assert session.scalar(select(AuditEntry.action)) == "create"


def test_audit_log_readers(session):
    auth.create_user(session, username="reg1", password="long-enough", role=REGULATOR, division_code="510000")
    session.commit()
    assert read_audit_log(session, Principal(9, "a", AUDITOR))
    assert read_audit_log(session, Principal(9, "r", REGULATOR, division_code="510000"))
    assert read_audit_log(session, Principal(9, "r", REGULATOR, division_code="530000")) == []
    with pytest.raises(Forbidden):
        read_audit_log(session, Principal(9, "e", ENTERPRISE, enterprise_id=1))


def test_token_login_and_role_checks(client, session):
    auth.create_user(session, username="boss", password="long-enough", role=ADMIN)
    auth.create_user(session, username="viewer", password="long-enough", role=AUDITOR)
    session.commit()
    assert client.get("/api/auth/me").status_code == 401
    bad = client.post("/api/auth/token", data={"username": "boss", "password": "nope-nope"})
    assert bad.status_code == 401 and bad.json()["detail"][0]["msg"] == "用户名或密码错误"
    admin = login(client, "boss", "long-enough")
    assert client.get("/api/auth/me", headers=admin).json()["role"] == ADMIN
    viewer = login(client, "viewer", "long-enough")
    assert client.get("/api/users", headers=viewer).status_code == 403
    assert client.get("/api/auth/me", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    created = client.post("/api/users", headers=admin, json={"username": "newreg", "password": "long-enough", "role": REGULATOR, "division_code": "150000"})
    assert created.status_code == 201, created.text
    assert client.post("/api/users", headers=admin, json={"username": "newreg", "password": "long-enough", "role": REGULATOR, "division_code": "150000"}).status_code == 409
    audit = client.get("/api/audit", headers=viewer).json()
    assert any(entry["entity"] == "user" and entry["after"]["username"] == "newreg" for entry in audit)


def test_validation_errors_name_the_field_in_both_languages(client, session):
    auth.create_user(session, username="boss", password="long-enough", role=ADMIN)
    session.commit()
    admin = login(client, "boss", "long-enough")
    response = client.post("/api/users", headers=admin, json={"username": "x"})
    assert response.status_code == 422
    fields = {detail["field"] for detail in response.json()["detail"]}
    assert {"password", "role"} <= fields
    assert all(detail["msg"] and detail["msg_en"] for detail in response.json()["detail"])
    garbage = client.post("/api/users", headers={**admin, "content-type": "application/json"}, content=b"{not json")
    assert garbage.status_code == 422
    weird = client.get("/api/audit?limit=-5", headers=admin)
    assert weird.status_code == 422 and weird.json()["detail"][0]["field"] == "limit"


def test_web_login_sets_cookie_and_rejects_foreign_redirects(client, session):
    auth.create_user(session, username="boss", password="long-enough", role=ADMIN)
    session.commit()
    failed = client.post("/login", data={"username": "boss", "password": "wrong-one"})
    assert failed.status_code == 401 and "用户名或密码错误" in failed.text
    response = client.post("/login", data={"username": "boss", "password": "long-enough", "next": "//evil.example"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert "ingot_token" in response.cookies
    page = client.get("/audit")
    assert page.status_code == 200 and "login" in page.text
