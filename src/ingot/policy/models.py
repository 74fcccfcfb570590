"""Stored compliance runs: what was evaluated (catalogue hash, date, overrides, who), and every verdict it gave.

A run is evaluated over the whole registry, because caps and shares are about a whole province or metal and would
be wrong on a subset; who may read which verdict is decided when it is read (see ``ingot.policy.runs``). Each verdict
keeps its geography and the unit's capacities of that day, so a stored run can be filtered, compared and exported
long after the registry has moved on.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ingot.core.db import Base, JSONData, Quantity, UTCDateTime
from ingot.core.timeutil import utcnow


class ComplianceRun(Base):
    __tablename__ = "compliance_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    catalogue_hash: Mapped[str] = mapped_column(String(64), index=True)
    as_of: Mapped[date] = mapped_column(Date, index=True)
    # Overrides as canonical "RULE.PARAM=VALUE" strings, sorted: the same scenario always reads the same.
    overrides: Mapped[list] = mapped_column(JSONData, default=list)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_by_id: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    unit_count: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict] = mapped_column(JSONData, default=dict)


class ComplianceVerdict(Base):
    __tablename__ = "compliance_verdicts"
    __table_args__ = (Index("ix_compliance_verdicts_run_subject", "run_id", "rule_id", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("compliance_runs.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    check_type: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    # What was judged: a unit id for per-unit rules, "province=150000,metal=aluminium" for aggregate groups.
    subject: Mapped[str] = mapped_column(String(256))
    unit_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    enterprise_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    enterprise_name: Mapped[str] = mapped_column(String(128), default="")
    unit_name: Mapped[str] = mapped_column(String(128), default="")
    group: Mapped[dict | None] = mapped_column(JSONData, nullable=True)
    province: Mapped[str | None] = mapped_column(String(6), nullable=True)
    prefecture: Mapped[str | None] = mapped_column(String(6), nullable=True)
    metal: Mapped[str | None] = mapped_column(String(32), nullable=True)
    process_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Decimals are kept as exact strings inside JSON, keyed by fact or parameter name.
    measured: Mapped[dict] = mapped_column(JSONData, default=dict)
    thresholds: Mapped[dict] = mapped_column(JSONData, default=dict)
    units: Mapped[dict] = mapped_column(JSONData, default=dict)
    matched: Mapped[list] = mapped_column(JSONData, default=list)
    missing: Mapped[list] = mapped_column(JSONData, default=list)
    # Why a not_applicable rule did not apply: {"dimension", "unit", "scope"}; NULL for every other verdict.
    excluded: Mapped[dict | None] = mapped_column(JSONData, nullable=True)
    capacities: Mapped[dict] = mapped_column(JSONData, default=dict)
    due: Mapped[date | None] = mapped_column(Date, nullable=True)
    headroom: Mapped[Decimal | None] = mapped_column(Quantity(), nullable=True)
    citation_seed: Mapped[str] = mapped_column(String(64))
    citation_section: Mapped[str] = mapped_column(String(128))
    citation_quote: Mapped[str] = mapped_column(Text)
