"""The kill test (tools/kill_resume.py) as a slow test: ``python -m pytest -m slow``."""

import pytest

from tools.kill_resume import kill_test


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_at_most_one_snapshot_and_ends_bit_identical(tmp_path):
    failures, kills = kill_test("configs/tiny2d.yaml", ["train.kimg=0.4"], kills=8, seed=1, work=tmp_path, echo=print)
    assert not failures, failures
    assert kills >= 3  # the random moments must actually interrupt the run
