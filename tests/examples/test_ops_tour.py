import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ops_tour_runs_and_its_checks_hold():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "examples/ops_tour.py"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert [line[:3] for line in lines] == ["1D:", "2D:", "3D:"]
    for line in lines:
        gap = float(re.search(r"\|fused - unfused\| = ([0-9.e+-]+)", line).group(1))
        assert gap < 1e-4  # the two modulated-conv paths agree
        assert "upsampled constant spans [2.000, 2.000]" in line  # FIR up-sampling keeps a constant
