#!/usr/bin/env bash
# GPU check of kanpde's fused Triton kernels: compiled-kernel tests, then the kernel benchmark.
#
# For a session whose task has the device machine (one H200; 15 minutes of device time for
# the whole session, at most 10 minutes per command; nothing can be downloaded there). Its
# image has python3 (3.12) with torch (2.11+cu130 when last seen), triton, numpy, scipy, h5py
# and pytest(-xdist), so nothing needs carrying: the package is installed from the working
# tree with --no-deps (or, if that fails, put on PYTHONPATH).
#
# Call it ONCE through the device tool, from the repository root (the tree travels by itself):
#
#     run(command="bash scripts/gpu_check.sh", timeout_s=540)
#
# then give the machine back (give_back) unless you rerun at once. The script keeps its own
# time limits (about 7 minutes in all, see BUDGET_S) so that the files come back even when a
# step hangs. Everything is tee'd to $OUT/log.txt; the files that come back are
#
#     log.txt                      versions, nvidia-smi, pytest output, benchmark tables
#     kernels.json, kernels.md     kanpde bench kernels --device cuda (float64, default sizes)
#     kernels_float32.{json,md}    the same in float32, only if time was left
#
# What to commit afterwards (from the reply's files_at folder):
#
#     results/kernels.md   = kernels.md, headed by the device name (the 'cuda_device' line of
#                            the log / "machine" of kernels.json) and the command:
#                            `kanpde bench kernels --device cuda --json results/kernels.json
#                            --markdown results/kernels.md` (run by scripts/gpu_check.sh),
#                            plus the float32 table if it came back;
#     results/kernels.json = kernels.json (and kernels_float32.json).
#
# and update the README's "GPU kernels" section with the measured speed-ups and the test
# result. Exit status: 0 all passed; 1 a test failed; 2 set-up failed (no CUDA, no torch or
# triton, kanpde not importable); 3 tests passed but the benchmark failed or timed out.
#
# Locally (no GPU) it stops at the set-up check with status 2; OUT defaults to a temp folder.

set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}"
mkdir -p "$OUT"
LOG="$OUT/log.txt"
export PYTHONUNBUFFERED=1
BUDGET_S=${BUDGET_S:-400}   # stop starting new steps after this many seconds
PY=python3
START=$SECONDS

log() { echo "[gpu_check $(( SECONDS - START ))s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET_S - (SECONDS - START) )); }
run_logged() {  # run_logged TIMEOUT_S CMD...: run with a time limit, output into the log
    local limit=$1
    shift
    log "\$ $*  (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    return "${PIPESTATUS[0]}"
}

: >"$LOG"
log "repository $(pwd), OUT=$OUT"
log "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(git status --porcelain 2>/dev/null | wc -l) changed files"
{ nvidia-smi || true; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem \
    --format=csv || true; } 2>&1 | tee -a "$LOG"
$PY - <<'EOF' 2>&1 | tee -a "$LOG"
import platform, sys
print("python", sys.version.split()[0], sys.executable, platform.machine())
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available",
          torch.cuda.is_available())
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        print("cuda_device", p.name, f"{p.total_memory / 2**30:.0f} GiB", f"sm_{p.major}{p.minor}",
              p.multi_processor_count, "SMs")
except Exception as err:
    print("torch import failed:", err)
try:
    import triton
    print("triton", triton.__version__)
except Exception as err:
    print("triton import failed:", err)
EOF

if ! $PY -c "import torch, triton, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    log "SETUP FAILED: needs python3 with torch (CUDA) and triton; carry wheels (see the device README)"
    exit 2
fi

# install kanpde from the working tree without touching torch/triton (no index, no deps)
if $PY -m pip install -q --no-deps --no-build-isolation --no-index -e . >>"$LOG" 2>&1; then
    log "installed kanpde (editable, --no-deps)"
else
    log "pip install failed; using PYTHONPATH=$(pwd)"
fi
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
if ! $PY -c "import kanpde, kanpde.kernels, kanpde.cli.bench.kernels; print('kanpde', kanpde.__file__)" \
        2>&1 | tee -a "$LOG"; then
    log "SETUP FAILED: kanpde does not import (a dependency missing on the device? carry it)"
    exit 2
fi

# tests: the small compiled-kernel cases and test_jet.py in parallel (Triton compiles per
# process, so xdist spreads the compilation), then the large cases (tens of GB each) alone
TESTS=(tests/test_kernels_cuda.py tests/test_jet.py)
XDIST=()
if $PY -c "import xdist" 2>/dev/null; then XDIST=(-n 8); fi
test_rc=0
passed() { [ "$1" -eq 0 ] || [ "$1" -eq 5 ]; }  # 5: pytest collected nothing (all skipped)
run_logged 200 $PY -m pytest "${TESTS[@]}" -q -p no:cacheprovider ${XDIST[@]+"${XDIST[@]}"} \
    -k "not large"
passed $? || test_rc=1
run_logged 180 $PY -m pytest tests/test_kernels_cuda.py -q -p no:cacheprovider -k "large"
passed $? || test_rc=1
log "tests: $([ $test_rc -eq 0 ] && echo PASSED || echo FAILED)"

# benchmark: float64 with the default CUDA sizes; the JSON and markdown are rewritten after
# every worker, so a run cut short by the limit still leaves its finished rows
bench_rc=0
limit=$(( $(left) - 20 ))
if [ "$limit" -gt 60 ]; then
    run_logged "$limit" $PY -m kanpde bench kernels --device cuda --dtype float64 \
        --json "$OUT/kernels.json" --markdown "$OUT/kernels.md" || bench_rc=1
else
    log "no time left for the benchmark"; bench_rc=1
fi
limit=$(( $(left) - 10 ))
if [ "$limit" -gt 90 ]; then
    run_logged "$limit" $PY -m kanpde bench kernels --device cuda --dtype float32 \
        --json "$OUT/kernels_float32.json" --markdown "$OUT/kernels_float32.md" || true
else
    log "skipping the float32 benchmark (${limit}s left)"
fi
log "benchmark: $([ $bench_rc -eq 0 ] && echo OK || echo FAILED/INCOMPLETE)"
log "done in $(( SECONDS - START ))s"

if [ $test_rc -ne 0 ]; then exit 1; fi
if [ $bench_rc -ne 0 ]; then exit 3; fi
exit 0
