#!/bin/sh
# Profile one pager workload of the release bench with perf, and only that workload: the
# bench enables perf's events around each repetition of it (xtask/src/perf.rs), so the raw
# and fio runs interleaved with it stay out of the profile.
#
#   benchmarks/profile.sh WORKLOAD [BENCH OPTIONS...]
#   benchmarks/profile.sh pageout-seq --only pageout-seq
#   benchmarks/profile.sh pagein-seq --only pagein-seq
#   benchmarks/profile.sh pagein-rand-8t --only pagein-rand
#
# Root (loop devices); perf from linux-perf. Writes $OUT/WORKLOAD.data (default OUT:
# /tmp/swapkit-profile) and prints the self-time table and the shares of the costs
# benchmarks/README.md names (children: a function with everything it calls).
set -eu
w=${1:?usage: benchmarks/profile.sh WORKLOAD [BENCH OPTIONS...]}
shift
out=${OUT:-/tmp/swapkit-profile}
mkdir -p "$out"
rm -f "$out/ctl" "$out/ack"
mkfifo "$out/ctl" "$out/ack"
cd "$(dirname "$0")/.."
cargo build --release -p xtask
SWAPKIT_PERF_CTL="$out/ctl" SWAPKIT_PERF_ACK="$out/ack" SWAPKIT_PERF_PHASE="$w" \
    perf record -F 999 --call-graph dwarf,8192 -D -1 \
    --control "fifo:$out/ctl,$out/ack" -o "$out/$w.data" -- \
    target/release/xtask bench "$@" 2>&1 | grep -E "^  ($w|raw-)"
rm -f "$out/ctl" "$out/ack"
echo "== $w: self time, symbols over 1% =="
perf report -i "$out/$w.data" --no-children --sort symbol --stdio -g none \
    --percent-limit 1 2>/dev/null | sed 's/ *- *- *$//' | grep -E '^ +[0-9]'
echo "== $w: with callees =="
perf report -i "$out/$w.data" --children --sort symbol --stdio -g none 2>/dev/null |
    sed 's/ *- *- *$//' | grep -E '\] (pager::integrity::copy_crcs|pager::integrity::crcs|crc32c::hw_x86_64::crc32c|__do_sys_io_uring_enter|__x64_sys_statx|__do_sys_statx|statx|settle \(inlined\)|__x64_sys_futex|do_futex|pager::getpages::.*getpages|pager::putpages::.*putpages|device::engine::uring::reap|device::area::SwapArea::settle|stamp \(inlined\)|verify \(inlined\)|xtask::workloads::verify|__memset_avx512_unaligned_erms|__memmove_avx512_unaligned_erms|_raw_spin_lock|parking_lot::raw_mutex::RawMutex::lock_slow)$'
