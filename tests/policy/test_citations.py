"""Every quoted citation occurs verbatim in its seed document."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingot.policy.catalogue import load_catalogue

SEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"
CATALOGUE = load_catalogue()


@pytest.mark.parametrize("provision", CATALOGUE.provisions, ids=lambda p: p.id)
def test_quote_is_verbatim(provision):
    seed_file = SEEDS / provision.citation.seed
    if not seed_file.is_file():
        pytest.skip(f"seed documents not available at {SEEDS}; the citation check needs ../shared/seeds")
    text = seed_file.read_text(encoding="utf-8")
    assert provision.citation.quote in text, (
        f"{provision.id}: quote not found verbatim in {provision.citation.seed}: {provision.citation.quote!r}"
    )


def test_every_seed_document_is_catalogued():
    if not SEEDS.is_dir():
        pytest.skip(f"seed documents not available at {SEEDS}")
    seeds = sorted(path.name for path in SEEDS.glob("*.txt"))
    assert sorted(CATALOGUE.documents) == seeds
