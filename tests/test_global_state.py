"""Issue 16.5: a library call leaves the process as it found it (RNGs, cuDNN flags,
torch's thread count, the umask)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch


def _umask():
    """The process's umask, read without setting it (Linux: /proc/self/status)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    pytest.skip("this kernel does not report Umask in /proc/self/status")


def _globals():
    cudnn = torch.backends.cudnn
    return (random.getstate(), np.random.get_state(), torch.get_rng_state(),
            torch.get_num_threads(), cudnn.deterministic, cudnn.benchmark)


def _same(a, b):
    py_a, np_a, torch_a, *rest_a = a
    py_b, np_b, torch_b, *rest_b = b
    return (py_a == py_b and all(np.array_equal(x, y) for x, y in zip(np_a, np_b))
            and torch.equal(torch_a, torch_b) and rest_a == rest_b)


def test_importing_skal_never_sets_the_umask():
    # os.umask can only be read by setting it: for an instant a file another
    # thread creates would get that mask. No skal module may call it.
    code = ("import os\n"
            "calls = []\n"
            "real = os.umask\n"
            "os.umask = lambda mask: calls.append(mask) or real(mask)\n"
            "import skal.results, skal.label.store, skal.runner, skal.label.project\n"
            "from skal.results import atomic_write\n"
            "import tempfile\n"
            "with tempfile.TemporaryDirectory() as d:\n"
            "    atomic_write(os.path.join(d, 'f'), lambda fh: fh.write(b'x'))\n"
            "assert calls == [], calls\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_trial_globals_seeds_as_the_study_and_restores(monkeypatch):
    from skal.protocols import trial_globals

    cudnn = torch.backends.cudnn
    monkeypatch.setattr(cudnn, "deterministic", False)
    monkeypatch.setattr(cudnn, "benchmark", True)
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    before = _globals()
    with trial_globals(4):
        # Known answers: the globals are those of seed 4, cuDNN as the study sets it.
        assert random.random() == random.Random(4).random()
        assert np.random.rand() == np.random.RandomState(4).rand()
        assert torch.rand(1).item() == torch.rand(1, generator=torch.Generator().manual_seed(4)).item()
        assert (cudnn.deterministic, cudnn.benchmark) == (True, False)
    assert _same(_globals(), before)
    with pytest.raises(RuntimeError):  # restored on error too
        with trial_globals(5):
            random.random()
            raise RuntimeError("stop")
    assert _same(_globals(), before)


def test_a_trial_leaves_the_process_as_it_found_it(shipped_root, tmp_path, monkeypatch):
    from skal.runner import run_trial

    cudnn = torch.backends.cudnn
    monkeypatch.setattr(cudnn, "deterministic", False)
    monkeypatch.setattr(cudnn, "benchmark", True)
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    before, umask = _globals(), _umask()
    # coreset: its k-center loop runs single-threaded inside the trial.
    experiment = run_trial("coreset", "breastmnist", 0, preset="fast", out=tmp_path, cycles=2,
                           epochs=1, root=shipped_root, device="cpu")
    assert len(experiment.learning_curve_) == 2
    assert _same(_globals(), before)
    assert _umask() == umask


def test_the_kernels_single_thread_only_the_calling_thread():
    # While a core-set loop runs single-threaded, a thread that makes its first
    # torch call must still get the process's count (torch.set_num_threads
    # would hand it 1 for good), and one already running keeps its own.
    from skal.kernels import _SingleThreaded

    seen = {}
    ready, go, asked, done = (threading.Event() for _ in range(4))

    def running():
        seen["running_before"] = torch.get_num_threads()
        ready.set()
        go.wait()
        seen["running_during"] = torch.get_num_threads()

    def starting():
        seen["new_during"] = torch.get_num_threads()
        asked.set()
        done.wait()
        seen["new_after"] = torch.get_num_threads()

    saved = torch.get_num_threads()
    torch.set_num_threads(2)  # the test needs a count other than 1
    try:
        first = threading.Thread(target=running)
        first.start()
        ready.wait()
        with _SingleThreaded(torch.device("cpu")) as single:
            seen["here_during"] = torch.get_num_threads()
            with single.all_threads():
                seen["here_gemm"] = torch.get_num_threads()
            go.set()
            first.join()
            second = threading.Thread(target=starting)
            second.start()
            asked.wait()
        done.set()
        second.join()
        seen["here_after"] = torch.get_num_threads()
    finally:
        torch.set_num_threads(saved)
    assert seen == {"running_before": 2, "running_during": 2, "new_during": 2,
                    "new_after": 2, "here_during": 1, "here_gemm": 2, "here_after": 2}


def test_a_query_leaves_the_thread_count_and_generators_alone():
    from skal.kernels import badge_kmeanspp, k_center_greedy

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), 3000).astype(np.float32)
    before = _globals()
    a = k_center_greedy(x, None, 20, random_state=0)
    b = badge_kmeanspp(probs, x, 20, random_state=0)
    assert _same(_globals(), before)
    # Same picks as before the change (a known answer kept from the kernels' own tests).
    assert np.array_equal(a, k_center_greedy(x, None, 20, random_state=0, method="naive"))
    assert np.array_equal(b, badge_kmeanspp(probs, x, 20, random_state=0, method="naive"))
