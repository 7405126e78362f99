"""benchmarks/query_speed.py on a tiny input: every contender skal ships runs in
its own process and picks what skal's kernels pick (scikit-activeml, a
benchmark-only extra, is left out)."""

import csv
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "query_speed.py"
CONTENDERS = ["skal-kcenter", "naive-kcenter", "fullmatrix-kcenter",
              "skal-badge", "naive-badge", "fullmatrix-badge"]


def test_query_speed_quick_run_agrees_with_skal(tmp_path):
    out = tmp_path / "table.csv"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--kinds", "clustered",
         "--threads", "1", "--contenders", *CONTENDERS, "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["contender"] for r in rows] == CONTENDERS
    for row in rows:
        assert float(row["wall_s"]) > 0 and float(row["peak_extra_MB"]) >= 0, row
        if not row["contender"].startswith("skal-"):
            assert row["note"].startswith("picks identical to skal-"), row
            assert row["skal_speedup"].endswith("x"), row
