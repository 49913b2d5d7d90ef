#!/usr/bin/env bash
# Runs every benchmark and regenerates BENCHMARKS.md (never edit that file by hand).
#
#   scripts/bench.sh
#
# 1. The host benchmark of the portable core (cargo bench --bench core).
# 2. The benchmark guest (tests/guests/src/bin/bench.rs) as dom0 of granite and of Debian's
#    Xen 4.17 arm64 (fetched by scripts/fetch-payloads.sh), under one QEMU command where only
#    -kernel differs, in these modes each:
#      icount1  -smp 1, -icount shift=0: instructions per operation (hypercalls, a stage-2
#               fault, the virtual timer's latency, a GICD write, an SGI to self), boot to
#               dom0; QEMU traces CNTVOFF_EL2 writes (-trace arm_gt_cntvoff_write)
#      wall1    -smp 1 without -icount: wall-clock nanoseconds of emulation
#      wall2    -smp 2, dom0_max_vcpus=2, no -icount (one host thread per vCPU): the event-channel
#               round trip between the two vCPUs; the add/remove round trip on 1, then 2 vCPUs
#               at once (contention on the domain's P2M lock)
#      wall4    the same with 4 vCPUs
#      icount2  -smp 2, dom0_max_vcpus=2, -icount: the event-channel round trip between the
#               two vCPUs alone (only=evtchn_2vcpus)
#      loglvl   icount1 with loglvl=all guest_loglvl=all (guest-triggered messages printed, as
#               far as the hypervisor's rate limit lets them through)
#    (-icount serialises the vCPUs on one host thread and switches between them only every
#    100 ms of virtual time, so a vCPU waiting for a lock its descheduled holder owns spins for
#    the rest of that slice: under -icount a contention figure measures QEMU's scheduler. The
#    event-channel round trip waits in WFI on both sides, which hands the thread over at once.)
#    On granite only (Xen cannot start a domU from a boot module), with -icount and without:
#      domu / domu-wall  -smp 2: the bench guest as a domU too (role=domu), an event-channel
#               echo; dom0 (peer=domu) times the round trip to it
# 3. Debian's Linux 6.1 as dom0 (-smp 1, scripts/linux-dom0.sh with its initramfs) on each
#    hypervisor under -icount, with CNTVOFF_EL2 writes traced: /init runs `xen-selftest
#    --counter` first, which prints the virtual counter; power-on to init = CNTVOFF_EL2 (the
#    counter when the hypervisor created dom0) + that counter.
# 4. scripts/lib/bench_report.py turns the logs (target/bench/) into BENCHMARKS.md.
#
# Benchmarks are not tests: this exits non-zero only if it could not measure (a build or a
# run failed, or a figure is missing from a log); BENCHMARKS.md is then left as it was.
#
# Environment: ITERS (iterations per operation, default 2000), TIMEOUT (seconds per QEMU run,
# default 300), NO_BUILD=1 (use the images as they are).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
iters=${ITERS:-2000}
timeout=${TIMEOUT:-300}
out=target/bench
mkdir -p "$out"
rm -f "$out"/*.log

fail() { echo "bench: $*" >&2; exit 1; }

bash scripts/install-deps.sh >/dev/null || fail "cannot install QEMU"
if [ -z "${NO_BUILD:-}" ]; then
    bash scripts/build.sh >/dev/null || fail "build failed"
fi
bash scripts/fetch-payloads.sh xen >/dev/null || fail "cannot fetch Xen 4.17"
granite=target/images/granite.bin
xen=target/payloads/xen/boot/xen-4.17-arm64
for f in "$granite" "$xen" target/images/bench.img; do
    [ -f "$f" ] || fail "missing $f"
done

echo "[bench] host: cargo bench --bench core"
# Single-thread rows pinned to one CPU (steadier), then the contended row on every CPU.
pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
cargo bench --bench core --no-run 2>/dev/null || fail "cannot build the host benchmark"
{
    BENCH_PART=single "${pin[@]}" cargo bench --bench core 2>/dev/null | grep '^|'
    BENCH_PART=contention cargo bench --bench core 2>/dev/null | grep '^|'
} >"$out/host.md"
[ -s "$out/host.md" ] || fail "the host benchmark printed nothing"

# The same command line for both (granite warns about the Xen-only option and ignores it).
# LVL (log level, default info), DOM0_VCPUS (default: the CPUs), ARGS (more boot arguments for
# the bench guest) and DOMU=1 (the bench guest as a domU too) are set per run.
cmdline() { # $1 = CPUs
    local lvl=${LVL:-info}
    echo "dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=$lvl guest_loglvl=$lvl dom0_max_vcpus=${DOM0_VCPUS:-$1}"
}
domu_device="guest-loader,addr=0x4a000000,kernel=target/images/bench.img,bootargs=console=hvc0 role=domu granite.vcpus=1 granite.mem=32M"
dom0_device() { # $1 = CPUs
    echo "guest-loader,addr=0x49000000,kernel=target/images/bench.img,bootargs=console=hvc0 iters=$iters vcpus=${DOM0_VCPUS:-$1}${ARGS:+ $ARGS}"
}
qemu_cmd() { # $1 = -kernel image, $2 = CPUs, $3 = extra QEMU options
    echo "qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp $2 -m 2G" \
        "-nographic -no-reboot $3 -kernel $1 -append \"$(cmdline "$2")\"" \
        "${DOMU:+-device \"$domu_device\" }-device \"$(dom0_device "$2")\""
}
icount="-icount shift=0,align=off,sleep=off"
trace="-trace arm_gt_cntvoff_write"
run() { # $1 = name (granite|xen), $2 = image, $3 = mode, $4 = CPUs, $5 = extra QEMU options
    local log="$out/$1-$3.log" start rc domu=()
    [ -n "${DOMU:-}" ] && domu=(-device "$domu_device")
    echo "[bench] $1 $3: $(qemu_cmd "$2" "$4" "$5")"
    start=$(date +%s)
    # QEMU puts each guest-loader node before the previous ones: the last is dom0.
    # shellcheck disable=SC2086 # $5 is a list of options
    timeout "$timeout" qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 \
        -smp "$4" -m 2G -nographic -no-reboot $5 -kernel "$2" -append "$(cmdline "$4")" \
        "${domu[@]}" -device "$(dom0_device "$4")" </dev/null >"$log" 2>&1
    rc=$?
    grep -aq '\[granite-bench\] done' "$log" || fail "$1 $3: the guest did not finish (QEMU status $rc; log $log)"
    echo "[bench] $1 $3: done in $(($(date +%s) - start)) s"
}
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for hv in granite xen; do
    img=$granite
    [ "$hv" = xen ] && img=$xen
    run "$hv" "$img" icount1 1 "$icount $trace"
    run "$hv" "$img" wall1 1 ""
    run "$hv" "$img" wall2 2 ""
    run "$hv" "$img" wall4 4 ""
    ARGS=only=evtchn_2vcpus run "$hv" "$img" icount2 2 "$icount"
    LVL=all run "$hv" "$img" loglvl 1 "$icount"
done
DOMU=1 DOM0_VCPUS=1 ARGS="only=evtchn_dom0_domu peer=domu" run granite "$granite" domu 2 "$icount"
DOMU=1 DOM0_VCPUS=1 ARGS="only=evtchn_dom0_domu peer=domu" run granite "$granite" domu-wall 2 ""

# Linux dom0 to its init, -smp 1 under -icount (scripts/linux-dom0.sh's own command line for
# the hypervisor; its verdict is not ours: only the counter line and the CNTVOFF_EL2 trace).
linux_cmdline="dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=info dom0_max_vcpus=1"
for hv in granite xen; do
    img=$granite
    [ "$hv" = xen ] && img=$xen
    log="$out/$hv-linux.log"
    echo "[bench] $hv linux: scripts/linux-dom0.sh, HV=$img SMP=1 QEMU_EXTRA=\"$icount $trace\""
    start=$(date +%s)
    HV=$img SMP=1 HV_CMDLINE=$linux_cmdline TIMEOUT=$timeout LOG=$log QEMU_EXTRA="$icount $trace" \
        bash scripts/linux-dom0.sh >"$out/$hv-linux.out" 2>&1
    grep -aq '\[xen-selftest\] counter cntvct=' "$log" || fail "$hv linux: no counter line from init (log $log)"
    grep -aq 'gt_cntvoff_write' "$log" || fail "$hv linux: QEMU traced no CNTVOFF_EL2 write (log $log)"
    echo "[bench] $hv linux: done in $(($(date +%s) - start)) s"
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)
{
    echo "date=$(date -u +%Y-%m-%d)"
    echo "machine=$(nproc) host CPUs (${cpu:-unknown CPU})"
    echo "host_cpus=$(nproc)"
    echo "load_start=$load_start"
    echo "load_end=$load_end"
    echo "rustc=$(rustc --version)"
    echo "qemu=$(qemu-system-aarch64 --version | head -n1)"
    echo "iters=$iters"
    echo "cmd_icount1=$(qemu_cmd '<granite.bin or xen-4.17-arm64>' 1 "$icount $trace")"
    echo "cmd_icount2=$(ARGS=only=evtchn_2vcpus qemu_cmd '<granite.bin or xen-4.17-arm64>' 2 "$icount")"
    echo "cmd_loglvl=$(LVL=all qemu_cmd '<granite.bin or xen-4.17-arm64>' 1 "$icount")"
    echo "cmd_domu=$(DOMU=1 DOM0_VCPUS=1 ARGS="only=evtchn_dom0_domu peer=domu" qemu_cmd target/images/granite.bin 2 "$icount")"
    echo "linux_cmdline=$linux_cmdline"
    kernels=(target/payloads/linux/boot/vmlinuz-*-arm64)
    echo "linux_kernel=${kernels[0]}"
    echo "granite_image=$(stat -c %s "$granite")"
    echo "xen_image=$(stat -c %s "$xen")"
    echo "host_table=$out/host.md"
} >"$out/info.txt"

python3 scripts/lib/bench_report.py "$out" >"$out/BENCHMARKS.md" || fail "some figures are missing (see above)"
cp "$out/BENCHMARKS.md" BENCHMARKS.md
# The README shows the latest hypercall table, between two markers.
python3 - "$out/hypercalls.md" <<'PY'
import sys
table = open(sys.argv[1]).read()
begin, end = "<!-- bench:hypercalls -->\n", "<!-- /bench:hypercalls -->"
readme = open("README.md").read()
a, b = readme.index(begin) + len(begin), readme.index(end)
open("README.md", "w").write(readme[:a] + table + readme[b:])
PY
echo "[bench] wrote BENCHMARKS.md and the table in README.md"
cat BENCHMARKS.md
