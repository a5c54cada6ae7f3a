#!/usr/bin/env bash
# Everything that needs a CUDA device, in one run of a few minutes:
#   1. the tests marked `cuda` (no host synchronisation in watch's or the probe's hooks,
#      autocast, the overhead benchmark's [sync=error] rows), then the forked-replay tests
#      under xdist (REPLAY_S, REPLAY_JOBS);
#   2. `nndoctor check --json` on the examples that take `--device`, on the device
#      (their verdicts are compared with CPU runs of the same seeds afterwards);
#   3. the in-process overhead benchmark on the device (`overhead.py --device cuda`);
#   4. with SUITE_S=seconds, the whole test suite (pytest-xdist) with the device present.
#
#   bash benchmarks/cuda_checks.sh [OUTDIR]      # OUTDIR defaults to $OUT, else ./cuda-results
#
# Each stage has its own time limit, so that one slow stage cannot take the others' results
# with it; results are packed into OUTDIR/cuda-results.tgz after every stage.
set -u -o pipefail
export PYTHONUNBUFFERED=1
out="${1:-${OUT:-./cuda-results}}"
mkdir -p "$out/r"
py="${PYTHON:-python3}"
pack() { tar -czf "$out/cuda-results.tgz" -C "$out" r; }

{
    date -u
    nvidia-smi -L || true
    "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '-')"
} 2>&1 | tee "$out/r/env.txt"

# An editable install registers the pytest plugin's entry point; without one the package
# is still importable from the checkout.
"$py" -m pip install -q --no-deps --no-index --no-build-isolation -e . >"$out/r/install.txt" 2>&1 ||
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

timeout "${CUDA_TESTS_S:-120}" "$py" -m pytest -p no:cacheprovider -q -m cuda tests 2>&1 |
    tee "$out/r/cuda-tests.txt"
pack

# The forked replays with a device present, under xdist as when five of them failed there
# ("the replay failed: no output"): their children now print why, and the server asks for
# the fork-safe CUDA check.
timeout "${REPLAY_S:-150}" "$py" -m pytest -p no:cacheprovider -q -n "${REPLAY_JOBS:-4}" \
    tests/capture/test_replay.py >"$out/r/replay-tests.txt" 2>&1
echo "replay tests rc=$?" | tee -a "$out/r/replay-tests.txt"
pack

examples=(healthy_cnn healthy_mlp healthy_bf16_cnn healthy_regression healthy_transformer
    dead_relu_init eval_mode_training frozen_layer high_lr unnormalized_pixels)
run_example() {
    timeout "${CHECK_S:-170}" "$py" -m nndoctor check "examples/$1.py" --json "$out/r/check-$1-cuda.json" \
        --fail-on never -- --device cuda >"$out/r/check-$1-cuda.txt" 2>&1
    echo "$1 rc=$?"
}
export -f run_example
export out py
printf '%s\n' "${examples[@]}" |
    timeout "${CHECKS_S:-150}" xargs -P "${CHECK_JOBS:-5}" -I{} bash -c 'run_example {}' |
    tee "$out/r/checks.txt"
pack

timeout "${OVERHEAD_S:-240}" "$py" benchmarks/overhead.py --device cuda \
    ${OVERHEAD_ARGS:-} --json "$out/r/overhead-cuda.json" 2>"$out/r/overhead-progress.txt" |
    tee "$out/r/overhead-cuda.md"
pack

# 4. The whole suite with a device present (CI never has one): what changes when CUDA is
#    available. Workers as the machine allows; cut off at its limit.
if [ "${SUITE_S:-0}" -gt 0 ]; then
    timeout "$SUITE_S" "$py" -m pytest -p no:cacheprovider -q -n "${SUITE_JOBS:-12}" ${SUITE_ARGS:-} tests >"$out/r/suite.txt" 2>&1
    echo "suite rc=$?" | tee -a "$out/r/suite.txt"
    pack
fi
echo done
