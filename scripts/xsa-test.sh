#!/usr/bin/env bash
# XSA regression guests (tests/guests/src/bin/xsa.rs): every Arm-relevant Xen security
# advisory about grant tables, the physmap and the P2M, event channels and the virtual GIC,
# reproduced as a named scenario (xsaNNN_...) under QEMU virt with 4 vCPUs:
#   v3    every single-domain scenario, dom0 with 4 vCPUs, GICv3 (races on every vCPU, the
#         audit hypercall on when the hypervisor is granite)
#   v2    the virtual-GIC scenarios again with GICv2 (XSA-117's GICD_SGIR exists only there)
#   xdom  granite only: dom0 (2 vCPUs) and a domU (2 vCPUs) from two guest-loader modules; the
#         domU maps dom0's grants 400 times, binds 900 ports to dom0's and is mapped by dom0 as
#         foreign, then crashes while dom0 works on it (XSA-344, 380, 410, 473)
#
# A run passes (exit 0) when QEMU exits 0, the hypervisor does not panic, dom0 prints its
# SUMMARY, every scenario the run must report has a PASS line (or, on granite, a FAIL line
# listed below as a known granite bug: reported as XFAIL), no other FAIL line appears, the
# hypervisor printed at most XSA118_MAX lines during XSA-118's flood of logged vGIC accesses,
# and (xdom) the dead domU was finalised once dom0 let go of its pages.
#
# Environment (all optional):
#   HV=path        hypervisor image (default target/images/granite.bin); HV=xen boots Debian's
#                  Xen 4.17 (runs v3 and v2 only: the cross-domain run needs granite's boot-time
#                  domUs), whose command line then leaves guest messages at Xen's default level
#                  (XSA-118 is about their rate limit) and the guest expects Xen 4.17's answers
#                  where they differ from Xen's fixed upstream code (quirks=xen, each printed)
#   RUNS="v3 v2 xdom"  the runs, in order (Xen: "v3 v2")
#   ITERS=N        race loops x N (default 4 on granite, 1 on Xen)
#   GUEST_ARGS=... more guest boot arguments (e.g. "only=xsa343 verbose")
#   TIMEOUT=secs   QEMU wall-clock limit per run (default 180)
#   NO_BUILD=1     use the images as they are
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2

# Scenarios granite currently fails because of a granite bug (reported with a reproduction);
# they still run and still fail, and are listed as XFAIL instead of failing the run. Remove
# an entry once the bug is fixed (the run then says XPASS).
known_granite_bugs=(
    # (none: the five the scenarios found — XSA-382 zero status frames, XSA-500 a copy
    # through a rewritten pinned grant, XSA-221 SCHEDOP_poll, XSA-223 an active interrupt's
    # priority on GICv3, XSA-473 foreign frames as a bad page — are fixed, each with a host
    # regression test)
)

v3_scenarios=(
    xsa224_device_map_refused_and_refcounts_kept xsa224_bus_address_checked_only_for_device_maps
    xsa226_transitive_grant_refused_in_v1 xsa235_physmap_error_paths_release_the_lock
    xsa255_v2_status_frames_refused xsa268_v2_switch_refused_while_in_use
    xsa295_grant_flags_rewritten_under_map_unmap xsa379_one_frame_never_at_two_gfns
    xsa380_many_mappings_of_one_grant_bounded xsa382_status_frames_capacity_checked
    xsa382_status_frames_zero_requested xsa384_frame_map_and_remove_race
    xsa387_every_status_frame_path_refused xsa394_partial_unmaps_keep_the_mapping
    xsa411_transitive_copy_error_keeps_table_usable xsa448_zero_length_copy_ignored
    xsa486_status_frame_map_racing_version_change xsa500_copy_of_a_pinned_grant_uses_its_frame
    xsa500_copy_into_a_rewritten_pinned_grant_refused xsa501_version_change_racing_grant_ops
    xsa437_xsa447_cache_flush_at_page_and_memory_ends xsa222_ram_pages_removed_from_a_block
    xsa301_gfns_beyond_the_ipa_refused xsa393_remove_after_set_way_maintenance
    xsa409_scattered_mappings_bounded_and_freed xsa493_no_stale_translation_after_remove
    xsa107_fifo_without_control_block xsa221_fifo_ports_beyond_the_event_array
    xsa221_sched_poll_bad_port_list xsa340_send_racing_port_allocation
    xsa343_reset_racing_every_operation xsa496_bind_virq_with_no_free_port
    xsa344_reset_of_every_port_preemptible xsa358_fifo_control_block_racing_sends
    xsa359_fifo_expand_racing_sends xsa505_fifo_expand_racing_reset
    xsa94_icfgr_of_every_interrupt xsa118_vgic_messages_rate_limited xsa223_disabled_inflight_interrupt
)
v2_scenarios=(
    xsa94_icfgr_of_every_interrupt xsa117_gicv2_sgir_reserved_target_filter
    xsa118_vgic_messages_rate_limited xsa223_disabled_inflight_interrupt
)
xdom_scenarios=(
    xsa380_xsa344_xsa410_set_up_a_big_domu xsa473_foreign_pages_of_a_live_domu
    xsa410_domu_dies_while_dom0_works_on_it xsa473_copies_from_foreign_pages_while_their_owner_dies
    xsa380_grants_released_when_the_mapping_domu_died xsa344_ports_unbound_when_the_peer_died
    xsa473_foreign_pages_of_a_dead_domu
)
XSA118_MAX=100

. scripts/lib/hypervisor.sh
HV=${HV:-target/images/granite.bin}
if [ "$HV" = xen ]; then
    HV=
    HV_CMDLINE=${HV_CMDLINE:-dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=all}
fi
pick_hypervisor xsa
if [ "$hv_name" = xen ]; then
    RUNS=${RUNS:-v3 v2}
    ITERS=${ITERS:-1}
    hv_prefix='(XEN)'
else
    RUNS=${RUNS:-v3 v2 xdom}
    ITERS=${ITERS:-4}
    hv_prefix='(granite)'
    HV_CMDLINE="$HV_CMDLINE granite_audit=1"
fi
TIMEOUT=${TIMEOUT:-180}
img=target/images/xsa.img

if [ -z "${NO_BUILD:-}" ]; then
    bash scripts/build.sh >/dev/null || { echo "[xsa] build failed" >&2; exit 2; }
fi
for f in "$HV" "$img"; do
    [ -f "$f" ] || { echo "[xsa] missing $f" >&2; exit 2; }
done
mkdir -p target/logs

is_known_bug() { # scenario run
    local k
    for k in "${known_granite_bugs[@]}"; do
        [ "$k" = "$1" ] || [ "$k" = "$1@$2" ] && return 0
    done
    return 1
}

status=0
for run in $RUNS; do
    log=target/logs/$hv_name-xsa-$run.log
    case $run in
        v3 | v2)
            gic=${run#v}
            args="console=hvc0 iters=$ITERS"
            [ "$run" = v2 ] && args="$args only=xsa94+xsa117+xsa118+xsa223"
            [ "$run" = v2 ] && scenarios=("${v2_scenarios[@]}") || scenarios=("${v3_scenarios[@]}")
            echo "[xsa] $run: $HV ($HV_CMDLINE dom0_max_vcpus=4) + dom0 $img ($args ${GUEST_ARGS:-}), log $log"
            timeout "$TIMEOUT" qemu-system-aarch64 \
                -machine virt,virtualization=on,gic-version="$gic" -cpu cortex-a57 -smp 4 -m 2G \
                -nographic -no-reboot -kernel "$HV" -append "$HV_CMDLINE dom0_max_vcpus=4" \
                -device "guest-loader,addr=0x49000000,kernel=$img,bootargs=$args ${GUEST_ARGS:-}" \
                </dev/null >"$log" 2>&1
            qemu_rc=$?
            ;;
        xdom)
            if [ "$hv_name" = xen ]; then
                echo "[xsa] xdom: granite only (boot-time domUs from guest-loader modules): skipped"
                continue
            fi
            scenarios=("${xdom_scenarios[@]}")
            echo "[xsa] xdom: $HV + dom0 and a domU, both $img, log $log"
            # The last guest-loader module given is the first in the device tree: dom0.
            timeout "$TIMEOUT" qemu-system-aarch64 \
                -machine virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 4 -m 2G \
                -nographic -no-reboot -kernel "$HV" -append "dom0_mem=128M loglvl=all granite_audit=1" \
                -device "guest-loader,addr=0x4a000000,kernel=$img,bootargs=role=domu granite.vcpus=2 granite.mem=32M" \
                -device "guest-loader,addr=0x49000000,kernel=$img,bootargs=role=xdom ${GUEST_ARGS:-}" \
                </dev/null >"$log" 2>&1
            qemu_rc=$?
            ;;
        *)
            echo "[xsa] unknown run $run" >&2
            exit 2
            ;;
    esac

    # Guest lines are "(dN) [...]" on granite and bare on Xen (dom0's output).
    lines=$(grep -aE '^(\(d[0-9]+\) )?\[(granite-test|xsa)\]' "$log" | tr -d '\r')
    echo "$lines" | grep -E '\[granite-test\] (PASS|FAIL|SUMMARY|ALL PASSED)|\[xsa\] (xen 4.17|xsa[0-9])' |
        grep -v 'xsa118 begin'
    ok=1
    if [ "$qemu_rc" != 0 ]; then
        [ "$qemu_rc" = 124 ] && echo "[xsa] $run: QEMU timed out after ${TIMEOUT}s" ||
            echo "[xsa] $run: QEMU exited with status $qemu_rc"
        ok=0
    fi
    if grep -aqiE '\(granite\) Panic|\(XEN\) .*(Panic on CPU|FATAL)' "$log"; then
        echo "[xsa] $run: the hypervisor panicked"
        ok=0
    fi
    grep -qE '^(\(d0\) )?\[granite-test\] SUMMARY' <<<"$lines" || { echo "[xsa] $run: no SUMMARY from dom0"; ok=0; }
    for s in "${scenarios[@]}"; do
        if grep -qE "\[granite-test\] PASS $s\$" <<<"$lines"; then
            if [ "$hv_name" != xen ] && is_known_bug "$s" "$run"; then
                echo "[xsa] $run: XPASS $s (listed as a known granite bug: remove it from the list)"
            fi
        elif grep -qE "\[granite-test\] FAIL $s:" <<<"$lines"; then
            if [ "$hv_name" != xen ] && is_known_bug "$s" "$run"; then
                echo "[xsa] $run: XFAIL $s (known granite bug)"
            else
                echo "[xsa] $run: FAIL $s"
                ok=0
            fi
        else
            echo "[xsa] $run: no verdict for $s"
            ok=0
        fi
    done
    # A FAIL line for anything else (e.g. "runtime": an unexpected exception).
    while read -r f; do
        name=${f#*FAIL }
        name=${name%%:*}
        grep -qxF "$name" < <(printf '%s\n' "${scenarios[@]}") || { echo "[xsa] $run: unexpected FAIL: $f"; ok=0; }
    done < <(echo "$lines" | grep -oE '\[granite-test\] FAIL [^ ]+' | sed 's/\[granite-test\] //')
    if [ "$run" != xdom ]; then
        # XSA-118: the hypervisor's own lines while the guest floods the vGIC with accesses
        # hypervisors log.
        n=$(awk '/\[xsa\] xsa118 begin/{on=1; next} /\[xsa\] xsa118 end/{on=0} on' "$log" | grep -acF "$hv_prefix")
        if grep -q 'xsa118 end' <<<"$lines"; then
            if [ "$n" -le "$XSA118_MAX" ]; then
                echo "[xsa] $run: xsa118: $n hypervisor lines during the flood of 6000 logged accesses (at most $XSA118_MAX)"
            else
                echo "[xsa] $run: xsa118: $n hypervisor lines during the flood (more than $XSA118_MAX): not rate limited"
                ok=0
            fi
        fi
    else
        for need in "d1v0: domain shutdown (crash)" "d1: destroyed;" "d1: every page freed, domain finalised"; do
            grep -aqF "$need" "$log" || { echo "[xsa] xdom: missing hypervisor line: $need"; ok=0; }
        done
    fi
    if [ "$ok" = 1 ]; then
        echo "[xsa] $run: OK"
    else
        echo "[xsa] $run: FAILED; every mismatch, then the tail of $log:"
        grep -aE '\[granite-test\] mismatch' "$log" | head -n 40 | tr -d '\r'
        echo "..."
        tail -n 15 "$log" | tr -d '\r'
        status=1
    fi
done
[ "$status" = 0 ] && echo "[xsa] OK ($hv_name)" || echo "[xsa] FAILED ($hv_name)"
exit "$status"
