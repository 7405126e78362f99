"""The README's examples are code that runs: its Python blocks and its quick-start command."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np


README = Path(__file__).parents[1] / "README.md"


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def _beats_the_majority_class(namespace, index):
    """After the README's Python block ``index``: its final model beats always guessing
    the test split's majority class."""
    ns = namespace
    if index in (0, 2, 3):
        majority = np.bincount(ns["y_test"]).max() / len(ns["y_test"])  # 0.731
        if index == 0:  # modAL's ActiveLearner
            assert ns["learner"].score(ns["X_test"], ns["y_test"]) > majority
        elif index == 2:  # the experiment's last cycle, on the test split
            assert ns["al"].learning_curve_[-1]["acc"] > majority
        else:  # the experiment on class names
            names_test = np.asarray(ns["info"].label_names)[ns["y_test"]]
            assert ns["al"].score(ns["X_test"], names_test) > majority
    # Block 4's GridSearchCV is a toy size, and the README says so.


def test_python_examples_run_in_order(shipped_root, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MEDMNIST_ROOT", str(shipped_root))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for index, code in enumerate(blocks("python")):
        exec(compile(code, str(README), "exec"), namespace)
        # The blocks' settings learn (their outputs are shown in the README).
        _beats_the_majority_class(namespace, index)
    out = capsys.readouterr().out
    assert "test accuracy" in out and "core-set picks" in out
    assert namespace["search"].best_params_["query_strategy"] in ("random", "entropy")
    assert len(namespace["search"].best_estimator_.learning_curve_) == 3


def test_main_job_command_runs_offline_on_a_fresh_machine(tmp_path):
    command = next(line for code in blocks("bash") for line in code.splitlines()
                   if "main.py --method badge" in line)
    words = shlex.split(command)
    env_assignments = [w for w in words if "=" in w and not w.startswith("-")]
    args = words[len(env_assignments) + 1:]  # after "python"
    assert args[0] == "main.py"
    assert env_assignments == []  # it needs no environment variable
    # The command as written, cut to two cycles so that the test stays short,
    # on a "fresh machine": no MEDMNIST_ROOT and an empty home (no ~/.medmnist),
    # so the data can only come from the files skal ships; a proxy that refuses
    # every connection makes any download attempt fail.
    env = {k: v for k, v in os.environ.items()
           if k != "MEDMNIST_ROOT" and k.lower() not in ("no_proxy", "all_proxy")}
    env["HOME"] = str(tmp_path / "home")
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = "http://127.0.0.1:9"
    result = subprocess.run(
        [sys.executable, str(README.parent / "main.py"), *args[1:], "--cycles", "2",
         "--quiet", "--out", str(tmp_path / "runs")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "runs" / "fast" / "pneumoniamnist" / "badge" / "results.csv"
            ).read_text().splitlines()
    assert len(rows) == 3  # header and two cycles
