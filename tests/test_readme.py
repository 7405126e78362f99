"""The README's examples are code that runs: its Python blocks and its quick-start command."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_examples_run_in_order(real_root, monkeypatch, tmp_path, capsys):
    if not (real_root / "breastmnist.npz").is_file():
        pytest.skip("breastmnist.npz is not in the data root")
    monkeypatch.setenv("MEDMNIST_ROOT", str(real_root))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for code in blocks("python"):
        exec(compile(code, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "test accuracy" in out and "core-set picks" in out
    assert namespace["search"].best_params_["query_strategy"] in ("random", "entropy")
    assert len(namespace["search"].best_estimator_.learning_curve_) == 3


def test_quick_start_command_runs_offline(real_root, tmp_path):
    command = next(line for code in blocks("bash") for line in code.splitlines()
                   if "main.py --method badge" in line)
    words = shlex.split(command)
    env_assignments = [w for w in words if "=" in w and not w.startswith("-")]
    args = words[len(env_assignments) + 1:]  # after "python"
    assert args[0] == "main.py"
    # The command as written, cut to two cycles so that the test stays short.
    result = subprocess.run(
        [sys.executable, str(README.parent / "main.py"), *args[1:], "--cycles", "2",
         "--quiet", "--out", str(tmp_path)],
        env={**os.environ, "MEDMNIST_ROOT": str(real_root)},
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "fast" / "pneumoniamnist" / "badge" / "results.csv").read_text().splitlines()
    assert len(rows) == 3  # header and two cycles
