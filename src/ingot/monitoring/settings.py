"""Settings of the HJ 212 receiver process, from the environment (`INGOT_MONITORING_*`, listed in the README).

    INGOT_MONITORING_RETENTION_DAYS   delete measurements (by data time) and raw packets (by receipt time) older
                                      than this many days, at the receiver's start and then every hour; unset keeps
                                      everything
"""
from __future__ import annotations

import os

RETENTION_DAYS_VARIABLE = "INGOT_MONITORING_RETENTION_DAYS"


def retention_days_setting() -> int | None:
    """The configured retention in days, None when unset; a ValueError naming the variable when it is not a whole
    number of at least 1."""
    text = os.environ.get(RETENTION_DAYS_VARIABLE, "").strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise ValueError(f"{RETENTION_DAYS_VARIABLE} 须为不小于 1 的整数天数（不设置则永久保留）/ must be a whole number "
                         f"of days of at least 1 (or unset to keep everything), not {text!r}")
    return int(text)
