#!/usr/bin/env bash
# GPU check of skal, for a session lent an NVIDIA GPU: the study's `paper`
# protocol (ResNet-18, 50 epochs a cycle, 10 cycles) for one method on
# pneumoniamnist, one trial, printing ACC, AUC and seconds after every cycle;
# then benchmarks/train_speed.py (ImageClassifier.fit against a plain PyTorch
# loop) on the same device, once alone and then in --jobs-check N processes at
# the same time (as run_all.py --jobs N runs cells on one GPU); and last
# benchmarks/study_time.py's estimate of the whole study's time (9 datasets x
# 4 methods x 5 trials, paper preset) from those ResNet-18 speeds. Expected to
# take 3-6 minutes on an H100 (an estimate from the study's image counts: no
# GPU has run it yet); --epochs/--cycles cut it down, and the timed steps have
# limits (--limit, --speed-limit: 360 + 90 + 90 s by default), so it ends
# within about 9 minutes plus the install's seconds.
#
# The device machine has python3 with torch, scikit-learn, pandas, matplotlib
# and tqdm, but not skorch, modAL or medmnist, and no network. Prepare, here,
# in the repository root (once; .whl/ must stay out of git):
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl \
#       skorch==1.4.0 modAL-python==0.4.1 medmnist==3.0.2
#
# pneumoniamnist comes with skal; for another --dataset, put its official
# file in a .data/ folder (also excluded from git) and carry it too.
#
# Any scikit-learn from 1.6 works: skal's modAL bridge (skal/_modal_compat.py)
# runs modAL 0.4.1 on 1.8 and newer too.
#
# Then run it there with `.whl` (and `.data`) carried:
#
#   bash benchmarks/gpu_check.sh                          # random, all 10 cycles, 50 epochs
#   bash benchmarks/gpu_check.sh --method badge --cycles 5 --epochs 20
#
# What it does first: prints nvidia-smi and the versions; installs the
# carried wheels with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PYTHONPATH
# installs skal with `pip install --no-deps -e .` (PYTHONPATH=. where that
# fails) unless it is importable already; and points MEDMNIST_ROOT at .data/
# when that folder exists and MEDMNIST_ROOT is unset. Files written: the
# trial's folder under --work-dir (a fresh temporary folder by default), and
# gpu_check.log and results.csv under $OUT when set (the device tool's
# output folder), else runs/gpu_check/.
#
# A CPU dry run of every Python step (what CI-less machines can check):
#
#   PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh --device cpu --epochs 1 --cycles 2
#
# Options:
#   --method NAME      query strategy (default random)
#   --dataset FLAG     MedMNIST 2D flag (default pneumoniamnist)
#   --seed N           the trial's seed (default 0)
#   --epochs N         epochs per cycle (default: the paper preset's 50)
#   --cycles N         cycles (default: the paper preset's 10)
#   --device DEV       cuda (default), cuda:1, cpu...
#   --work-dir DIR     where the trial's checkpoint goes (default: a new temporary folder)
#   --limit S          seconds allowed for the experiment (default 360)
#   --speed-limit S    seconds allowed for train_speed.py (default 90)
#   --speed-args "..." arguments of train_speed.py (default: none on CUDA;
#                      "--models resnet18 --n-images 64 --repeats 1" on the CPU)
#   --jobs-check N     train_speed.py's ResNet-18 in N processes at once, for the
#                      estimate with run_all.py --jobs N (default 4 on CUDA, 2 on
#                      the CPU; 0 skips it)
#   --no-speed         skip train_speed.py and the estimate
set -euo pipefail

METHOD=random DATASET=pneumoniamnist SEED=0 EPOCHS="" CYCLES="" DEVICE=cuda WORK_DIR=""
LIMIT=360 SPEED_LIMIT=90 SPEED_ARGS="__default__" SPEED=1 JOBS_CHECK=""
while [ $# -gt 0 ]; do
    case "$1" in
        --method) METHOD=$2; shift 2 ;;
        --dataset) DATASET=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --epochs) EPOCHS=$2; shift 2 ;;
        --cycles) CYCLES=$2; shift 2 ;;
        --device) DEVICE=$2; shift 2 ;;
        --work-dir) WORK_DIR=$2; shift 2 ;;
        --limit) LIMIT=$2; shift 2 ;;
        --speed-limit) SPEED_LIMIT=$2; shift 2 ;;
        --speed-args) SPEED_ARGS=$2; shift 2 ;;
        --jobs-check) JOBS_CHECK=$2; shift 2 ;;
        --no-speed) SPEED=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-python3}
if [[ "$PY" == */* && "$PY" != /* ]]; then
    PY=$PWD/$PY  # a relative path, before the cd
fi
cd "$(dirname "$0")/.."
LOG_DIR=${OUT:-runs/gpu_check}
mkdir -p "$LOG_DIR"
exec > >(tee "$LOG_DIR/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1
START=$SECONDS

echo "== machine"
if command -v nvidia-smi > /dev/null; then
    nvidia-smi
else
    echo "nvidia-smi: not found"
fi
"$PY" - <<'EOF'
import platform, sys
import torch
print(f"python {platform.python_version()} ({sys.executable})")
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, "
      f"cuda available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(f"GPU 0: {torch.cuda.get_device_name(0)}")
for name in ("numpy", "sklearn", "pandas", "scipy", "matplotlib", "tqdm"):
    try:
        module = __import__(name)
        print(f"{name} {module.__version__}")
    except ImportError:
        print(f"{name}: MISSING")
EOF

echo "== install"
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    echo "installed into /tmp/site: $(cd .whl && ls *.whl | tr '\n' ' ')"
fi
# Checked from another folder: the repository root would hide a missing install,
# and benchmarks/train_speed.py runs with benchmarks/, not the root, on its path.
importable() { (cd / && "$PY" -c "import $1" 2> /dev/null); }
if importable skal; then
    echo "skal importable already: not installed again"
elif "$PY" -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 \
        && importable skal; then
    echo "skal installed with pip install --no-deps -e ."
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    echo "pip could not install skal; using PYTHONPATH=$PWD"
fi
(cd / && "$PY" -) <<'EOF'
import sys
missing = []
for name in ("skorch", "modAL", "medmnist", "skal"):
    try:
        module = __import__(name)
        print(f"{name} {getattr(module, '__version__', '')} from {module.__file__}")
    except ImportError as exc:
        missing.append(f"{name} ({exc})")
if missing:
    sys.exit("gpu_check.sh: cannot run skal here, missing: " + "; ".join(missing)
             + ". See the top of benchmarks/gpu_check.sh for the wheels to carry in .whl/.")
EOF

if [ -z "${MEDMNIST_ROOT:-}" ] && [ -d .data ]; then
    export MEDMNIST_ROOT=$PWD/.data
fi
echo "MEDMNIST_ROOT=${MEDMNIST_ROOT:-(unset, so ~/.medmnist)}"
if [ -z "$WORK_DIR" ]; then
    WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/skal-gpu-check.XXXXXX")
fi

echo "== experiment: paper preset, $METHOD on $DATASET, seed $SEED, device" \
     "$DEVICE${EPOCHS:+, $EPOCHS epochs}${CYCLES:+, $CYCLES cycles} (limit ${LIMIT} s)"
export GPU_CHECK_METHOD=$METHOD GPU_CHECK_DATASET=$DATASET GPU_CHECK_SEED=$SEED \
    GPU_CHECK_EPOCHS=$EPOCHS GPU_CHECK_CYCLES=$CYCLES GPU_CHECK_DEVICE=$DEVICE \
    GPU_CHECK_WORK=$WORK_DIR GPU_CHECK_LOG=$LOG_DIR
STATUS=0
timeout --signal=INT "$LIMIT" "$PY" - <<'EOF' || STATUS=$?
# The command line's own code path (skal.runner.run_trial), with a line per cycle.
import os, shutil, time
from skal.callbacks import Callback
from skal.estimator import resolve_device
from skal.runner import run_trial

env = os.environ
number = lambda key: int(env[key]) if env[key] else None
device = env["GPU_CHECK_DEVICE"]
print(f"torch device: {resolve_device(device)}")
start = time.perf_counter()

class Report(Callback):
    def on_cycle_end(self, experiment, record):
        print(f"cycle {record['cycle']:>2}: {record['n_labeled']:>5} labeled  "
              f"ACC {record['acc']:.4f}  AUC {record['auc']:.4f}  "
              f"train {record['train_seconds']:7.1f} s  query {record['query_seconds']:5.1f} s  "
              f"(total {time.perf_counter() - start:6.1f} s)", flush=True)

experiment = run_trial(env["GPU_CHECK_METHOD"], env["GPU_CHECK_DATASET"],
                       int(env["GPU_CHECK_SEED"]), preset="paper", out=env["GPU_CHECK_WORK"],
                       epochs=number("GPU_CHECK_EPOCHS"), cycles=number("GPU_CHECK_CYCLES"),
                       device=device, callbacks=[Report()])
curve = experiment.learning_curve_
train = sum(r["train_seconds"] for r in curve)
query = sum(r["query_seconds"] for r in curve)
print(f"done: {len(curve)} cycles in {time.perf_counter() - start:.1f} s "
      f"(training {train:.1f} s, queries {query:.1f} s); final ACC {curve[-1]['acc']:.4f} "
      f"AUC {curve[-1]['auc']:.4f}")
trial = os.path.join(env["GPU_CHECK_WORK"], "paper", env["GPU_CHECK_DATASET"],
                     env["GPU_CHECK_METHOD"], f"trial_{env['GPU_CHECK_SEED']}")
shutil.copy(os.path.join(trial, "results.csv"), os.path.join(env["GPU_CHECK_LOG"], "results.csv"))
EOF
if [ "$STATUS" -ne 0 ]; then
    echo "experiment: exit status $STATUS (124 or 130: stopped at the ${LIMIT} s limit;" \
         "cut --epochs/--cycles, or rerun with --work-dir $WORK_DIR to resume)"
fi

if [ "$SPEED" = 1 ]; then
    if [ "$SPEED_ARGS" = "__default__" ]; then
        case "$DEVICE" in
            cpu) SPEED_ARGS="--models resnet18 --n-images 64 --repeats 1" ;;
            *) SPEED_ARGS="" ;;
        esac
    fi
    if [ -z "$JOBS_CHECK" ]; then
        case "$DEVICE" in cpu) JOBS_CHECK=2 ;; *) JOBS_CHECK=4 ;; esac
    fi
    rm -f "$LOG_DIR"/speed*.json
    echo "== train_speed.py --device $DEVICE $SPEED_ARGS (limit ${SPEED_LIMIT} s)"
    # shellcheck disable=SC2086  # the arguments are meant to split
    timeout "$SPEED_LIMIT" "$PY" benchmarks/train_speed.py --device "$DEVICE" $SPEED_ARGS \
            --json "$LOG_DIR/speed.json" \
        || { code=$?; echo "train_speed.py: exit status $code"; [ "$STATUS" -ne 0 ] || STATUS=$code; }
    CONCURRENT=()
    if [ "$JOBS_CHECK" -gt 0 ]; then
        echo "== train_speed.py --models resnet18 in $JOBS_CHECK processes at once" \
             "(limit ${SPEED_LIMIT} s)"
        PIDS=()
        # Each process gets its share of the cores, as run_all.py gives each cell.
        THREADS=$(( $(nproc) / JOBS_CHECK )); [ "$THREADS" -ge 1 ] || THREADS=1
        for i in $(seq 1 "$JOBS_CHECK"); do
            # shellcheck disable=SC2086
            OMP_NUM_THREADS=$THREADS timeout "$SPEED_LIMIT" "$PY" benchmarks/train_speed.py --device "$DEVICE" $SPEED_ARGS \
                --models resnet18 --json "$LOG_DIR/speed_concurrent_$i.json" \
                > "$LOG_DIR/speed_concurrent_$i.log" 2>&1 &
            PIDS+=("$!")
            CONCURRENT+=("$LOG_DIR/speed_concurrent_$i.json")
        done
        for i in "${!PIDS[@]}"; do
            wait "${PIDS[$i]}" || { echo "process $((i + 1)): exit status $?";
                                    CONCURRENT=(); }
        done
        cat "$LOG_DIR"/speed_concurrent_*.log
    fi
    echo "== estimate of the whole study (benchmarks/study_time.py)"
    if [ -f "$LOG_DIR/speed.json" ]; then
        "$PY" benchmarks/study_time.py "$LOG_DIR/speed.json" \
            ${CONCURRENT[@]:+--concurrent "${CONCURRENT[@]}"} \
            || { code=$?; echo "study_time.py: exit status $code"; [ "$STATUS" -ne 0 ] || STATUS=$code; }
    else
        echo "no speed measured: no estimate"
    fi
fi

echo "== gpu_check.sh finished in $((SECONDS - START)) s, status $STATUS; log $LOG_DIR/gpu_check.log"
exit "$STATUS"
