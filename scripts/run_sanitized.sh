#!/usr/bin/env bash
# Check the C monitor with AddressSanitizer + UndefinedBehaviorSanitizer, and with valgrind memcheck.
#
# 1. Builds csrc/ with -DHNGGML_SANITIZE=ON into a temporary folder and runs,
#    against that library: a canary that must trip ASan (proof that the
#    sanitizer is live), the fake-ggml fuzz tests of tests/test_fuzz.py, and
#    scripts/c_smoke.py on the real model.
# 2. Builds the monitor without sanitizers (with -g) and runs a canary, the
#    fake-ggml fuzz tests (the "smoke" profile) and scripts/c_smoke.py under
#    valgrind memcheck. Python and llama.cpp report their own memcheck
#    errors, so only error reports with a frame in the monitor count.
#
# Python runs with the ASan runtime preloaded (ASan must be the first library
# loaded), leak detection off (the interpreter does not free everything at
# exit), and PYTHONMALLOC=malloc so that Python's buffers get ASan red zones.
#
# Usage: scripts/run_sanitized.sh [--no-valgrind]
# Environment: PYTHON (default python3) must import llama_cpp, cffi, numpy,
# gguf, hypothesis and pytest; HNGGML_TEST_MODEL and HNGGML_TEST_PROBE select
# the model and probe (default: the embedded model and its shipped probe).
# Exit status 0 when every check passes.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

run_valgrind=1
if [[ "${1:-}" == "--no-valgrind" ]]; then
    run_valgrind=0
fi

python=${PYTHON:-python3}
# valgrind must start the interpreter itself, not a wrapper script such as a pyenv shim.
python=$("$python" -c 'import sys; print(sys.executable)')
work=$(mktemp -d "${TMPDIR:-/tmp}/hnggml-sanitize.XXXXXX")
trap 'rm -rf "$work"' EXIT

export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
export HNGGML_CACHE=${HNGGML_CACHE:-$work/cache}
export PYTHONDONTWRITEBYTECODE=1

step() { printf '\n== %s\n' "$*"; }

# --- AddressSanitizer + UndefinedBehaviorSanitizer -----------------------------------

step "building the monitor with ASan and UBSan"
cmake -S "$repo" -B "$work/asan" -DHNGGML_SANITIZE=ON >/dev/null
cmake --build "$work/asan" >/dev/null
asan_runtime=$(gcc -print-file-name=libasan.so)
if [[ ! -e "$asan_runtime" ]]; then
    echo "libasan.so not found (gcc -print-file-name=libasan.so gave '$asan_runtime')" >&2
    exit 1
fi

asan() {
    HNGGML_MONITOR_LIB="$work/asan/libhnggml_monitor.so" \
    LD_PRELOAD="$asan_runtime" \
    ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    PYTHONMALLOC=malloc \
    "$@"
}

step "canary: a read past a buffer must stop the process"
canary='
from cffi import FFI
from hnggml import _monitor
ffi = FFI(); ffi.cdef(_monitor._cdef_text(_monitor._header_path()))
lib = ffi.dlopen(str(_monitor._library_path()))
row = ffi.new("float[8]"); out = ffi.new("float[4]")
lib.hn_logit_stats(row, 4096, 0, out)
'
if asan "$python" -c "$canary" >"$work/canary.log" 2>&1; then
    echo "the canary ran past its buffer unnoticed: ASan is not active" >&2
    exit 1
fi
grep -q "AddressSanitizer: heap-buffer-overflow" "$work/canary.log" || {
    cat "$work/canary.log" >&2
    echo "the canary failed without an ASan report" >&2
    exit 1
}
echo "ASan caught the canary"

step "fake-ggml fuzz tests under ASan and UBSan"
asan "$python" -m pytest -q -p no:cacheprovider tests/test_fuzz.py \
    -k "monitor or logit_stats" -o addopts=""

step "real-model smoke test under ASan and UBSan"
asan "$python" scripts/c_smoke.py 2> >(grep -v "llama_kv_cache" >&2)

# --- valgrind memcheck ---------------------------------------------------------------------

if [[ $run_valgrind -eq 0 ]]; then
    echo "skipping valgrind (--no-valgrind)"
    exit 0
fi
if ! command -v valgrind >/dev/null; then
    echo "valgrind not installed; skipping memcheck"
    exit 0
fi

step "building the monitor without sanitizers for valgrind"
cmake -S "$repo" -B "$work/plain" -DCMAKE_C_FLAGS="-g" >/dev/null
cmake --build "$work/plain" >/dev/null

suppressions=()
for supp in /usr/lib/valgrind/python3.supp /usr/lib/x86_64-linux-gnu/valgrind/python3.supp; do
    if [[ -f "$supp" ]]; then
        suppressions+=("--suppressions=$supp")
    fi
done

# Count the error reports in a valgrind log that have a frame in the monitor.
# Each report is a block of lines that ends with a bare "==pid== " line.
monitor_reports() {
    awk '/^==[0-9]+== $/ { if (block ~ /hnggml_monitor|hn_monitor_|hn_logit_stats/) n++; block=""; next }
         { block = block "\n" $0 }
         END { print n + 0 }' "$1"
}

print_monitor_reports() {
    awk '/^==[0-9]+== $/ { if (block ~ /hnggml_monitor|hn_monitor_|hn_logit_stats/) print block; block=""; next }
         { block = block "\n" $0 }' "$1" >&2
}

memcheck() {
    local log=$1
    shift
    HNGGML_MONITOR_LIB="$work/plain/libhnggml_monitor.so" PYTHONMALLOC=malloc HYPOTHESIS_PROFILE=smoke \
    valgrind --tool=memcheck --error-limit=no --num-callers=40 "${suppressions[@]}" \
        --log-file="$log" "$python" "$@"
}

report() {
    local name=$1 log=$2 total monitor
    total=$(grep -c "^==[0-9]*== [A-Z].*\(Invalid\|uninitialised\|Mismatched\|overlap\)" "$log" || true)
    monitor=$(monitor_reports "$log")
    echo "valgrind $name: $total error reports from Python and llama.cpp, $monitor with a frame in the monitor"
    if [[ "$monitor" -ne 0 ]]; then
        print_monitor_reports "$log"
        return 1
    fi
}

step "valgrind canary: a read past a buffer must be reported in the monitor"
memcheck "$work/canary.vg" -c "$canary" >/dev/null 2>&1 || true
if [[ "$(monitor_reports "$work/canary.vg")" -eq 0 ]]; then
    echo "valgrind did not report the canary's read past its buffer" >&2
    exit 1
fi
echo "valgrind caught the canary"

step "valgrind memcheck: fake-ggml fuzz tests (smoke profile)"
memcheck "$work/fuzz.vg" -m pytest -q -p no:cacheprovider tests/test_fuzz.py \
    -k "monitor_matches or logit_stats or monitor_scale" -o addopts=""
report "fuzz tests" "$work/fuzz.vg"

step "valgrind memcheck: real-model smoke test"
if memcheck "$work/smoke.vg" scripts/c_smoke.py 2> >(grep -v "llama_kv_cache" >&2); then
    report "smoke test" "$work/smoke.vg"
elif grep -q "unhandled instruction bytes" "$work/smoke.vg"; then
    # valgrind 3.19 decodes no AVX-512, and llama.cpp's CPU backend may be
    # built with it; the monitor's own code was covered by the fuzz tests.
    report "smoke test (stopped early)" "$work/smoke.vg"
    echo "valgrind cannot decode an instruction in llama.cpp's CPU backend; the real-model run stopped early"
else
    report "smoke test" "$work/smoke.vg" || true
    echo "the real-model smoke test failed under valgrind" >&2
    exit 1
fi

echo
echo "sanitizer and valgrind checks passed"
