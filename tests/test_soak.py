"""The soak (tests/soak.py, make soak: 30 minutes) in a two-minute version: memory and open files flat."""

from __future__ import annotations

import pytest

from soak import soak

pytestmark = pytest.mark.integration


def test_two_minutes_at_real_time_memory_and_open_files_stay_flat(assets, tmp_path):
    report = soak(120, 15, tmp_path / "soak")
    assert len(report["samples"]) >= 7
    assert all(report["flat"].values()), report["flat"]
    assert report["metrics"]["frames"] > 0 and report["samples"][-1]["e2e_p50_ms"] is not None
    assert (tmp_path / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
