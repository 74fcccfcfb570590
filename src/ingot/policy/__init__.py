"""Policy catalogue and compliance engine.

The catalogue (``catalogue/*.yaml``) holds every provision of the seed documents as cited, dated data; the engine
applies its checkable rules to :class:`~ingot.policy.facts.UnitFacts`. Everything here is pure: no database, no
network. The registry adapter, stored runs, API, CLI and pages live elsewhere and call in.
"""
from ingot.policy.catalogue import Catalogue, CatalogueError, Override, load_catalogue, parse_override
from ingot.policy.coverage import coverage, coverage_summary
from ingot.policy.engine import (
    Engine,
    EvaluationResult,
    Verdict,
    admission_check,
    cap_headroom,
    diff_results,
    elimination_list,
    evaluate,
    noncompliance_counts,
    what_if,
)
from ingot.policy.facts import UnitFacts, facts_from_mapping

__all__ = [
    "Catalogue",
    "CatalogueError",
    "Engine",
    "EvaluationResult",
    "Override",
    "UnitFacts",
    "Verdict",
    "admission_check",
    "cap_headroom",
    "coverage",
    "coverage_summary",
    "diff_results",
    "elimination_list",
    "evaluate",
    "facts_from_mapping",
    "load_catalogue",
    "noncompliance_counts",
    "parse_override",
    "what_if",
]
