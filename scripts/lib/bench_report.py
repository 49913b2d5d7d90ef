#!/usr/bin/env python3
"""Turns the benchmark runs of scripts/bench.sh into BENCHMARKS.md (printed on stdout).

    bench_report.py DIR

DIR (target/bench) holds the console logs <hv>-<mode>.log for hv in granite, xen and mode in
icount1 (-smp 1 under -icount shift=0, CNTVOFF_EL2 writes traced), wall1 (-smp 1, no -icount),
wall2 and wall4 (-smp 2 and 4 with as many dom0 vCPUs, no -icount), icount2 (-smp 2 under
-icount, the cross-vCPU event-channel round trip alone), loglvl (icount1 at loglvl=all) and
linux (Linux dom0 to init, -smp 1 under -icount, CNTVOFF_EL2 writes traced); granite-domu and
granite-domu-wall (dom0 and a domU, with and without -icount); and info.txt (key=value lines
written by bench.sh: the command lines, versions, image sizes, the host benchmark's table
file). Exits with status 1, printing what is missing on stderr, if any measurement is absent:
the report is only written whole.
"""
import os
import re
import sys

OPS = [
    # (op name in the guest, label, target ratio ours/Xen or None)
    ("null_hypercall", "null hypercall (`xen_version`)", 0.5),
    ("query_size", "`GNTTABOP_query_size`", None),
    ("grant_frame_add_remove", "grant-frame `add_to_physmap` + `remove_from_physmap`", 0.33),
    ("map_unmap_grant", "`map_grant_ref` + `unmap_grant_ref`", 0.5),
    ("stage2_fault", "stage-2 fault reflected to the guest", None),
]
# Interrupts, -smp 1 (icount1 and wall1): (op, label, target).
IRQ_OPS = [
    ("gicd_write", "trapped `GICD_IPRIORITYR` word write", None),
    ("sgi_self", "SGI to self (send, handler, EOI, back)", None),
]
# Latencies (lat= lines): (name, label, target).
LATS = [
    ("vtimer_busy", "virtual-timer interrupt latency, guest running (CVAL to IRQ vector, median)", 0.3),
    ("vtimer_wfi", "virtual-timer interrupt latency, guest in WFI (CVAL to IRQ vector, median)", 0.3),
]
EVTCHN_2VCPUS = ("evtchn_2vcpus", "event-channel round trip, dom0 vCPU 0 ↔ vCPU 1 (`-smp 2`)", 0.5)
EVTCHN_DOMU = ("evtchn_dom0_domu", "event-channel round trip, dom0 ↔ domU (`-smp 2`, granite only)")
# Frame-table bytes per frame: sizeof(struct page_info) of Xen 4.17 on arm64.
XEN_PAGE_INFO_BYTES = 56

LINE = re.compile(r"\[granite-bench\] op=(\S+) iters=(\d+) ticks=(\d+) freq=(\d+)(?: vcpus=(\d+))?")
LAT = re.compile(r"\[granite-bench\] lat=(\S+) n=(\d+) median=(\d+) min=(\d+) max=(\d+) sum=(\d+) freq=(\d+)")
ENTRY = re.compile(r"\[granite-bench\] entry_cntpct=(\d+) freq=(\d+)")
GUEST_CNTVOFF = re.compile(r"\[granite-bench\] cntvoff=(\d+)")
# QEMU's -trace arm_gt_cntvoff_write (log backend) and the Linux init's first command.
TRACE_CNTVOFF = re.compile(r"gt_cntvoff_write: value 0x([0-9a-f]+)")
COUNTER = re.compile(r"\[xen-selftest\] counter cntvct=(\d+) cntfrq=(\d+)")
RUN_INIT = re.compile(r"\[ *([0-9.]+)\] Run /init as init process")
MEMORY = re.compile(r"Hypervisor memory: (\d+) KiB \(image (\d+) KiB, frame table (\d+) KiB, Rust heap (\d+) KiB "
                    r"with (\d+) KiB in use, (\d+) KiB of pages")
FRAME_TABLE = re.compile(r"Frame table: \d+ frames .* x (\d+) bytes")

missing = []

# Where the time goes, for the targets these tables judge (from scripts/profile.sh and the
# logs; rewrite when the code changes).
INTERRUPT_NOTES = """**Targets.** Met: the event-channel round trip between two vCPUs of dom0 (≤ 0.5× Xen) and the
virtual timer's latency while the guest waits in WFI (≤ 0.3×, just: Xen's wake-up path, from
its software timer for the blocked vCPU's virtual timer through its scheduler and back, is
about 7 200 instructions). Missed: the virtual timer's latency while the guest runs, about
2.1× Xen's where the target is 0.3×. The `GICD_IPRIORITYR` write and the SGI to self have no
target; granite needs about 1.8× and 2.2× Xen's instructions for them.

**Where granite's time goes** (profiled when these rows were added: `scripts/profile.sh
gicd_write` and `sgi_self`; for the timer, two traced runs, `only=vtimer_busy` and one that
measures nothing, subtracted with `scripts/lib/profile.py`). One virtual-timer interrupt while
the guest runs costs about 2 140 hypervisor instructions of the ~2 250 in the latency:

- about 900 in loops over the 64 bit positions of a set of vCPUs (`vgic::Kicks::iter` is
  `(0..64).filter(..)`, which stays a 64-step loop in the image): to mark dirty the vCPUs a
  change of the virtual GIC concerns and to kick their CPUs, on every change, even for one
  vCPU (two such loops on the way back to the guest, a shorter one in the injection). The
  `GICD_IPRIORITYR` write goes through two of them (about 770 of its 1 240 instructions), the
  SGI to self through four (about 1 530 of its 2 680); iterating the set bits
  (`trailing_zeros`) would make each a few instructions;
- about 330 more in dispatching the physical interrupt (acknowledge, mask the timer, EOI,
  inject into the virtual GIC under its lock);
- about 390 in folding the list registers back into the virtual GIC and flushing them out
  again (`fold_lrs`, `flush_locked`, `read_lr`, `write_lr`), and about 160 in a heap
  allocation and free on that path (`Vec::retain`, the allocator);
- about 120 in the exception vectors (saving and restoring the guest's registers).

Without the loops and the allocation the path would be about 1 080 instructions, Xen's
level; 0.3× Xen (about 320) leaves room for little more than the exception entry and exit,
i.e. a dedicated path that puts the timer's virtual interrupt straight into a free list
register from the EL2 handler instead of going through the virtual GIC's model and its lock.
Beyond the loops, the GICD write spends about 110 in the priority registers' emulation."""
LINUX_NOTES = """**Target missed** (≤ 0.8× Xen). Where the time goes, measured once when this row was added
with QEMU's execution trace filtered to each hypervisor's addresses and to Linux's
(`-d exec,nochain,in_asm -dfilter`, the run stopped at init's counter line; not part of
`bench.sh`):

- granite executes about 46 M instructions in all: about 44 M before Linux's first
  instruction (copying the 32 MiB kernel and the initramfs into dom0's memory ~18 M, handing
  memory to its heap ~11 M, building dom0 and zeroing ~8 M, parsing device trees ~3 M) and
  only about 2 M handling Linux's traps and hypercalls on the way to init. Xen executes about
  213 M, most of them before dom0 runs (the bench guest's dom0 starts 192 ms after power-on:
  building its 512 MiB);
- Linux's kernel executes about 563 M instructions on granite and about 716 M on Xen; the
  rest of the virtual time (about 390 ms on granite, 210 ms on Xen) passed with the CPU idle
  in WFI, which `-icount` with `sleep=off` skips to the next timer (the long stretch before
  `clk: Disabling unused clocks`, about 500 ms of Linux's clock, is in both logs). That Linux
  executes more instructions on Xen in less time suggests it spins on Xen where it sleeps on
  granite while waiting for the same deadlines (we did not trace when): the time of the boot
  is Linux's waits plus its work, not its instruction count;
- Linux's own clock reads about 21 ms more at "Run /init" on granite (851 vs 830 ms). The
  stretches that differ most are the initcalls while the initramfs is unpacked in the
  background (about +22 ms) and a few shorter ones either way (a few ms each; with HZ=250 a
  jiffy-based sleep ends on a 4 ms tick, whose phase differs between the two boots).

So granite's own cost is now small (~46 ms of ~1 000), but the boot is dominated by Linux:
even a hypervisor that cost nothing would leave granite at about 956 ms of Linux, 0.84× Xen's
1 140. Reaching 0.8× needs Linux's part to end sooner (its idle waits), not a faster
hypervisor."""


def parse(path):
    """{op: (iters, ticks, freq)}, entry (cntpct, freq) or None, the whole text; latencies
    {name: (n, median, min, max, sum, freq)} go into ops too, under "lat:<name>"."""
    ops, entry = {}, None
    try:
        text = open(path, errors="replace").read()
    except OSError:
        missing.append(f"{path}: no log")
        return ops, entry, ""
    for m in LINE.finditer(text):
        ops[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
    for m in LAT.finditer(text):
        ops["lat:" + m.group(1)] = tuple(int(x) for x in m.groups()[1:])
    m = ENTRY.search(text)
    if m:
        entry = (int(m.group(1)), int(m.group(2)))
    return ops, entry, text


def lat_ns(ops, name, where, field=1):
    """A latency statistic in nanoseconds (= instructions under -icount shift=0): field 1 the
    median, 2 the minimum, 3 the maximum, 4 the mean."""
    v = ops.get("lat:" + name)
    if v is None:
        missing.append(f"{where}: no lat={name}")
        return None
    n, med, lo, hi, total, freq = v
    ticks = total / n if field == 4 else v[field]
    return ticks * 1e9 / freq


def cntvoff_traced(text, where):
    """The CNTVOFF_EL2 the hypervisor gave dom0, from QEMU's trace: the one non-zero value
    written (Xen writes 0 once at boot, then dom0's at every switch to it)."""
    vals = {int(v, 16) for v in TRACE_CNTVOFF.findall(text)} - {0}
    if len(vals) != 1:
        missing.append(f"{where}: {len(vals)} distinct non-zero CNTVOFF_EL2 writes traced (want 1)")
        return None
    return vals.pop()


def linux_boot(text, where):
    """Power-on to the Linux dom0's init: {"cntvoff": ms to dom0's creation, "after": ms from
    there to init's first command, "total": their sum, "printk": Linux's own timestamp of
    "Run /init" in ms} or None."""
    m = COUNTER.search(text)
    if m is None:
        missing.append(f"{where}: no counter line from init")
        return None
    cnt, freq = int(m.group(1)), int(m.group(2))
    off = cntvoff_traced(text, where)
    if off is None:
        return None
    ms = lambda t: t * 1e3 / freq
    r = RUN_INIT.search(text)
    return {"cntvoff": ms(off), "after": ms(cnt), "total": ms(off + cnt),
            "printk": float(r.group(1)) * 1e3 if r else None}


def cntvoff_check(runs):
    """Whether the traced CNTVOFF_EL2 equals the bench guest's own reading, per hypervisor."""
    out = []
    for hv, name in (("granite", "granite"), ("xen", "Xen")):
        text = runs[hv, "icount1"][2]
        m = GUEST_CNTVOFF.search(text)
        t = cntvoff_traced(text, f"{hv} icount1")
        if m is None:
            missing.append(f"{hv} icount1: no cntvoff line")
            continue
        g = int(m.group(1))
        out.append(f"{name} {g:,} ticks, traced {t:,}" + (" (equal)" if t == g else " (**differ**)") if t else "")
    return "; ".join(out)


def target_cell(r, target):
    if target is None:
        return "—"
    if r is None:
        return f"≤ {target}: not measured"
    return f"≤ {target}: {'met' if r <= target else '**missed**'}"


def per_op_ns(ops, name, where):
    """Nanoseconds of the guest's counter per operation (= instructions under -icount
    shift=0, where one instruction is one nanosecond of virtual time)."""
    if name not in ops:
        missing.append(f"{where}: no op={name}")
        return None
    iters, ticks, freq = ops[name]
    return ticks * 1e9 / freq / iters


def fmt(v, digits=0):
    return "—" if v is None else f"{v:,.{digits}f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main():
    d = sys.argv[1]
    info = {}
    for line in open(os.path.join(d, "info.txt")):
        k, _, v = line.rstrip("\n").partition("=")
        info[k] = v
    runs = {}
    for hv in ("granite", "xen"):
        for mode in ("icount1", "wall1", "wall2", "wall4", "icount2", "loglvl", "linux"):
            runs[hv, mode] = parse(os.path.join(d, f"{hv}-{mode}.log"))
    for mode in ("domu", "domu-wall"):
        runs["granite", mode] = parse(os.path.join(d, f"granite-{mode}.log"))

    out = []
    p = out.append
    p("# Benchmarks")
    p("")
    p(f"Generated by `scripts/bench.sh` on {info['date']} — {info['machine']},")
    p(f"{info['rustc']}, {info['qemu']}. Regenerate with `scripts/bench.sh`; never edit by hand.")
    p("Benchmarks are not tests: nothing here is a pass/fail criterion of the test command.")
    p("")
    p("## Hypercalls: granite vs Xen 4.17, instructions per operation")
    p("")
    p("The benchmark guest (`tests/guests/src/bin/bench.rs`) runs as dom0 of each hypervisor under")
    p("the same QEMU command; only `-kernel` differs (granite's image or Debian's Xen 4.17 arm64):")
    p("")
    p("```")
    p(info["cmd_icount1"])
    p("```")
    p("")
    p(f"Under `-icount shift=0` the guest's counter advances one nanosecond per executed instruction,")
    p(f"so ticks are instruction counts and repeat exactly. Each figure is the guest's counter over")
    p(f"{info['iters']} iterations (after a warm-up), divided by the iterations: hypervisor and guest")
    p("instructions of one round trip, trap entry and exit included.")
    p("")
    first = len(out)
    p("| operation | granite | Xen 4.17 | granite / Xen | target |")
    p("|---|---:|---:|---:|---|")
    g1, x1 = runs["granite", "icount1"][0], runs["xen", "icount1"][0]
    for name, label, target in OPS:
        a = per_op_ns(g1, name, "granite icount1")
        b = per_op_ns(x1, name, "xen icount1")
        r = ratio(a, b)
        if target is None:
            t = "—"
        elif r is None:
            t = f"≤ {target}: not measured"
        else:
            t = f"≤ {target}: {'met' if r <= target else '**missed**'}"
        p(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(r, 3)} | {t} |")
    # The stage-2 fault with every guest-triggered message enabled (issue 13: within 5 % of
    # the loglvl=info row once those messages are rate-limited).
    gl, xl = runs["granite", "loglvl"][0], runs["xen", "loglvl"][0]
    a = per_op_ns(gl, "stage2_fault", "granite loglvl")
    b = per_op_ns(xl, "stage2_fault", "xen loglvl")
    ga = per_op_ns(g1, "stage2_fault", "granite icount1")
    dev = ratio(a, ga)
    t = "—" if dev is None else \
        f"granite within 5 % of loglvl=info: {'met' if abs(dev - 1) <= 0.05 else '**missed**'} ({(dev - 1) * 100:+.1f} %)"
    p(f"| stage-2 fault reflected to the guest, `loglvl=all guest_loglvl=all` | {fmt(a)} | {fmt(b)} | "
      f"{fmt(ratio(a, b), 3)} | {t} |")
    for name, label, target in IRQ_OPS:
        a = per_op_ns(g1, name, "granite icount1")
        b = per_op_ns(x1, name, "xen icount1")
        r = ratio(a, b)
        p(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(r, 3)} | {target_cell(r, target)} |")
    for name, label, target in LATS:
        a = lat_ns(g1, name, "granite icount1")
        b = lat_ns(x1, name, "xen icount1")
        r = ratio(a, b)
        p(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(r, 3)} | {target_cell(r, target)} |")
    g2, x2 = runs["granite", "icount2"][0], runs["xen", "icount2"][0]
    name, label, target = EVTCHN_2VCPUS
    a = per_op_ns(g2, name, "granite icount2")
    b = per_op_ns(x2, name, "xen icount2")
    r = ratio(a, b)
    p(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(r, 3)} | {target_cell(r, target)} |")
    gd = runs["granite", "domu"][0]
    name, label = EVTCHN_DOMU
    a = per_op_ns(gd, name, "granite domu")
    p(f"| {label} | {fmt(a)} | — (no boot-time domUs) | — | — |")
    boot = {hv: linux_boot(runs[hv, "linux"][2], f"{hv} linux") for hv in ("granite", "xen")}
    a = boot["granite"]["total"] if boot["granite"] else None
    b = boot["xen"]["total"] if boot["xen"] else None
    r = ratio(a, b)
    p(f"| Linux dom0 (`-smp 1`): power-on to the first line of its init, ms of `-icount` time | "
      f"{fmt(a, 1)} | {fmt(b, 1)} | {fmt(r, 3)} | {target_cell(r, 0.8)} |")
    # The same table for the README (scripts/bench.sh splices it in).
    with open(os.path.join(d, "hypercalls.md"), "w") as f:
        f.write("\n".join(out[first:]) + "\n")
    p("")
    p("Where granite's time goes (`scripts/profile.sh OP` prints it function by function) is")
    p("described in the README's benchmark section.")
    p("")

    p("## Interrupts and event channels")
    p("")
    p("From the same `-smp 1` runs, after the figures above (the guest sets up its GIC, maps")
    p("`shared_info` and enables the event-channel interrupt only then):")
    p("")
    p("- **Virtual-timer latency**: the guest programs CNTV_CVAL 50 µs ahead and enables the")
    p("  timer; the sample is the virtual counter read by the first instructions of its IRQ vector")
    p("  minus CVAL (both hypervisors take the timer's interrupt at EL2, mask the timer and inject")
    p("  virtual PPI 27). *Running*: the guest spins with IRQs unmasked. *WFI*: it waits in WFI")
    p("  with IRQs masked (no race with the interrupt) and unmasks them once WFI returns at or")
    p("  after CVAL, a handful of guest instructions. 16 samples of warm-up, then 256. The")
    p("  counter runs at 62.5 MHz, so a sample is a multiple of 16 ns (= 16 instructions), rounded")
    p("  down: the timer fires on a tick and the vector reads the counter some instructions later.")
    p("- **`GICD_IPRIORITYR` write**: one 32-bit store to the priorities of SPIs 32-35 (the value")
    p("  they already have), trapped and emulated by the virtual distributor.")
    p("- **SGI to self**: an `ICC_SGI1R_EL1` write (trapped) for SGI 1 to the sender, taken at")
    p("  once on return (IRQs unmasked): acknowledge, count, EOI, back; the sender checks the count.")
    p("- **Event-channel round trip between two vCPUs of dom0** (`-smp 2`, `dom0_max_vcpus=2`,")
    p("  `only=evtchn_2vcpus`): vCPU 0 allocates port A for itself and binds port B to it")
    p("  (loopback interdomain), B moved to vCPU 1 (`EVTCHNOP_bind_vcpu`); vCPU 0 sends on A and")
    p("  sleeps in WFI until its upcall handler counted the answer; vCPU 1, idle in WFI, takes the")
    p("  upcall for B and sends on B from its handler. vCPU 0 keeps its virtual timer armed far")
    p("  ahead as a timeout (as any real guest has a timer armed while idle; Xen moves it to a")
    p("  software timer whenever the vCPU blocks, granite leaves it in the hardware).")
    p("- **dom0 ↔ domU** (granite only: Xen 4.17 cannot start a domU from a boot module): the same")
    p("  bench image as a domU (`role=domu`, pinned to the second CPU) grants dom0 a mailbox page,")
    p("  allocates an unbound port for dom0 that echoes from its upcall handler and publishes it")
    p("  there; dom0 (`peer=domu`) binds it and times the same round trip.")
    p("")
    p("Are instruction counts fair for a round trip across two vCPUs? Under `-icount` QEMU runs")
    p("all vCPUs on one thread, one at a time, and the virtual clock counts every vCPU's")
    p("instructions. Both sides wait in WFI, which the hypervisor turns into an idle CPU in WFI:")
    p("QEMU switches to the other vCPU as soon as one halts, so no time is spent idle or waiting")
    p("for a time slice, and the round trip costs the sum of what both CPUs execute: the sender's")
    p("send, block and wake-up, the receiver's wake-up, upcall, send and block. That is a fair")
    p("measure of the *work* of a round trip and repeats exactly, but not of its latency on real")
    p("hardware, where the two CPUs overlap (the receiver runs while the sender is still going to")
    p("sleep). The wall-clock runs (`-smp 2` without `-icount`, one host thread per vCPU) overlap")
    p("them as hardware would, but measure QEMU's emulation speed and the host's scheduling (the")
    p(f"host has {info['host_cpus']} CPUs, shared with whatever else runs there) as much as the hypervisor:")
    p("both are in the tables, the instruction count is the one the target is judged on.")
    p("")
    p("| measurement | granite | Xen 4.17 | granite / Xen |")
    p("|---|---:|---:|---:|")
    for name, label, _ in LATS:
        for field, what in ((1, "median"), (2, "min"), (3, "max"), (4, "mean")):
            a = lat_ns(g1, name, "granite icount1", field)
            b = lat_ns(x1, name, "xen icount1", field)
            p(f"| {label.split(' (')[0]}: {what} (instructions) | {fmt(a)} | {fmt(b)} | {fmt(ratio(a, b), 3)} |")
    for name, label, _ in IRQ_OPS:
        a = per_op_ns(g1, name, "granite icount1")
        b = per_op_ns(x1, name, "xen icount1")
        p(f"| {label} (instructions) | {fmt(a)} | {fmt(b)} | {fmt(ratio(a, b), 3)} |")
    name, label, _ = EVTCHN_2VCPUS
    a = per_op_ns(g2, name, "granite icount2")
    b = per_op_ns(x2, name, "xen icount2")
    p(f"| {label} (instructions, both vCPUs) | {fmt(a)} | {fmt(b)} | {fmt(ratio(a, b), 3)} |")
    a = per_op_ns(runs["granite", "wall2"][0], name, "granite wall2")
    b = per_op_ns(runs["xen", "wall2"][0], name, "xen wall2")
    p(f"| {label.replace('`-smp 2`', '`-smp 2`, wall clock')} (ns) | {fmt(a)} | {fmt(b)} | {fmt(ratio(a, b), 2)} |")
    name, label = EVTCHN_DOMU
    a = per_op_ns(gd, name, "granite domu")
    p(f"| {label} (instructions, both vCPUs) | {fmt(a)} | — | — |")
    a = per_op_ns(runs["granite", "domu-wall"][0], name, "granite domu-wall")
    p(f"| {label.replace('`-smp 2`', '`-smp 2`, wall clock')} (ns) | {fmt(a)} | — | — |")
    p("")
    p("The cross-vCPU and dom0 ↔ domU runs have QEMU commands of their own:")
    p("")
    p("```")
    p(info["cmd_icount2"])
    p(info["cmd_domu"])
    p("```")
    p("")
    p(INTERRUPT_NOTES)
    p("")

    p("## Log level: `loglvl=info` vs `loglvl=all guest_loglvl=all`")
    p("")
    p("The `-smp 1` `-icount` run again with every message level enabled, including those a guest")
    p("can trigger at will (issue 13: once they are rate-limited, as Xen's `XENLOG_G_*` messages")
    p("are, the two columns of a hypervisor should agree within 5 %). Instructions per operation:")
    p("")
    p("```")
    p(info["cmd_loglvl"])
    p("```")
    p("")
    p("| operation | granite, info | granite, all | all / info | Xen, info | Xen, all | all / info |")
    p("|---|---:|---:|---:|---:|---:|---:|")
    for name, label, _ in OPS + IRQ_OPS:
        gi = per_op_ns(g1, name, "granite icount1")
        ga = per_op_ns(gl, name, "granite loglvl")
        xi = per_op_ns(x1, name, "xen icount1")
        xa = per_op_ns(xl, name, "xen loglvl")
        p(f"| {label} | {fmt(gi)} | {fmt(ga)} | {fmt(ratio(ga, gi), 3)} | {fmt(xi)} | {fmt(xa)} | {fmt(ratio(xa, xi), 3)} |")
    p("")

    p("## Linux dom0: power-on to init")
    p("")
    p("Debian's Linux 6.1 arm64 (`" + info.get("linux_kernel", "?") + "`) with the project's initramfs")
    p("(`scripts/linux-initramfs.sh`) as dom0 of each hypervisor, `-smp 1`, booted by")
    p("`scripts/linux-dom0.sh` (`SMP=1`, its QEMU command, `QEMU_EXTRA=\"-icount shift=0,align=off,sleep=off")
    p("-trace arm_gt_cntvoff_write\"`), the hypervisor's command line")
    p(f"`{info.get('linux_cmdline', '?')}`.")
    p("")
    p("**Method.** The first command of `/init` (`tests/linux/init`) is `xen-selftest --counter`,")
    p("which reads the virtual counter CNTVCT_EL0 (Linux lets user space read it) and prints it.")
    p("The virtual counter is the physical one minus CNTVOFF_EL2, and both hypervisors set")
    p("CNTVOFF_EL2 to the physical counter at the moment they create dom0 (Xen's")
    p("`domain_vtimer_init`, granite's `counter_offset`); QEMU's trace event")
    p("`arm_gt_cntvoff_write` shows the value they write (the only non-zero one: Xen writes it at")
    p("every switch to dom0's vCPU, granite once). Under `-icount shift=0` the physical counter")
    p("counts virtual nanoseconds since QEMU's reset, so power-on to init = CNTVOFF_EL2 + CNTVCT")
    p("at init, one instruction per nanosecond, every instruction of the hypervisor, Linux and")
    p("the shell up to that command included. The trace only observes: it changes no instruction")
    p("the guest or the hypervisor executes. Cross-check: in the `-smp 1` bench runs, which trace")
    p("the same event, the bench guest reads CNTPCT_EL0 − CNTVCT_EL0 itself: "
      + cntvoff_check(runs) + ".")
    p("")
    p("| milestone (ms of `-icount` time) | granite | Xen 4.17 | granite / Xen |")
    p("|---|---:|---:|---:|")
    bg, bx = boot["granite"], boot["xen"]
    g_ = lambda k: bg[k] if bg else None
    x_ = lambda k: bx[k] if bx else None
    p(f"| power-on to dom0's creation (CNTVOFF_EL2) | {fmt(g_('cntvoff'), 1)} | {fmt(x_('cntvoff'), 1)} | "
      f"{fmt(ratio(g_('cntvoff'), x_('cntvoff')), 2)} |")
    p(f"| dom0's creation to init's first command (CNTVCT_EL0 there) | {fmt(g_('after'), 1)} | "
      f"{fmt(x_('after'), 1)} | {fmt(ratio(g_('after'), x_('after')), 2)} |")
    p(f"| **power-on to init** | **{fmt(g_('total'), 1)}** | **{fmt(x_('total'), 1)}** | "
      f"**{fmt(ratio(g_('total'), x_('total')), 3)}** |")
    p(f"| Linux's own timestamp of \"Run /init\" (its clock starts in `time_init`) | "
      f"{fmt(g_('printk'), 1)} | {fmt(x_('printk'), 1)} | {fmt(ratio(g_('printk'), x_('printk')), 2)} |")
    bootg = runs["granite", "icount1"][1]
    bootx = runs["xen", "icount1"][1]
    if bootg and bootx:
        p(f"| for comparison: power-on to the bench guest's first instruction (same `-icount`, "
          f"`dom0_mem=512M`) | {fmt(bootg[0] * 1e3 / bootg[1], 1)} | {fmt(bootx[0] * 1e3 / bootx[1], 1)} | "
          f"{fmt(ratio(bootg[0], bootx[0]), 2)} |")
    p("")
    p(LINUX_NOTES)
    p("")

    p("## Scaling")
    p("")
    p("Grant-frame add + remove round trip with grant frame 0 alone and with every other grant")
    p("frame of the table mapped too (instructions per round trip, `-icount`):")
    p("")
    p("| measurement | granite | Xen 4.17 |")
    p("|---|---:|---:|")
    for label, name in (("1 grant frame mapped", "grant_frame_add_remove"),
                        ("all 64 grant frames mapped", "grant_frame_add_remove_64")):
        a = per_op_ns(g1, name, "granite icount1")
        b = per_op_ns(x1, name, "xen icount1")
        p(f"| add + remove, {label} | {fmt(a)} | {fmt(b)} |")
    p("")
    p("The same round trip on 1, 2 and 4 vCPUs of dom0 at once, each on its own grant frame and")
    p("GFN, all behind the domain's one P2M lock (granite) or its P2M and grant-table locks (Xen):")
    p("wall-clock nanoseconds per round trip of the slowest vCPU, from `-smp 2` and `-smp 4` runs")
    p("without `-icount`, where QEMU gives each vCPU a host thread. "
      f"The host has {info['host_cpus']} CPUs, so")
    p("with more vCPUs than that they also share host CPUs (a vCPU holding the lock can be")
    p("descheduled by the host). Under `-icount` QEMU runs the vCPUs in turn and switches only")
    p("every 100 ms of virtual time, so a contention figure there would measure its scheduler.")
    p("")
    p("These figures mostly measure QEMU, not the lock: each removal ends with a broadcast")
    p("(inner-shareable) stage-2 TLB invalidation on both hypervisors, and QEMU's multi-threaded")
    p("TCG carries one out by stopping every vCPU thread (hence the 1-vCPU figure of a `-smp 2`")
    p("run is several times the `-smp 1` one), which costs far more once vCPUs outnumber host")
    p("CPUs. They vary by large factors from run to run. The cost of contention on granite's P2M")
    p("lock itself, with real threads on real CPUs, is in the host table below (several threads")
    p("doing the round trip at once on one domain).")
    p("")
    p("| vCPUs at once | granite (ns) | Xen 4.17 (ns) | granite / Xen |")
    p("|---|---:|---:|---:|")
    base = {}
    for k, mode in ((1, "wall2"), (2, "wall2"), (4, "wall4")):
        name = "add_remove_1vcpu" if k == 1 else f"add_remove_{k}vcpus"
        a = per_op_ns(runs["granite", mode][0], name, f"granite {mode}")
        b = per_op_ns(runs["xen", mode][0], name, f"xen {mode}")
        if k == 1:
            base = {"g": a, "x": b}
            p(f"| 1 | {fmt(a)} | {fmt(b)} | {fmt(ratio(a, b), 2)} |")
        else:
            p(f"| {k} | {fmt(a)} ({fmt(ratio(a, base['g']), 2)}× 1 vCPU) | "
              f"{fmt(b)} ({fmt(ratio(b, base['x']), 2)}× 1 vCPU) | {fmt(ratio(a, b), 2)} |")
    p("")

    p("## Wall clock (no `-icount`)")
    p("")
    p("The same guest and command without `-icount`: the counter is the host's real time, so these")
    p("are nanoseconds of QEMU TCG emulation per operation. They depend on the host and on QEMU's")
    p("translation cache, and vary from run to run. Figures that wait for another vCPU (the")
    p("event-channel round trips) also wait for the host to run that vCPU's thread, which had gone to")
    p("sleep in WFI: on a loaded host that is the host scheduler's latency, milliseconds, not the")
    p(f"hypervisor's (load average {info.get('load_start', '?')} when the runs began, "
      f"{info.get('load_end', '?')} when they ended, on {info['host_cpus']} CPUs).")
    p("")
    p("| operation | granite (ns) | Xen 4.17 (ns) | granite / Xen |")
    p("|---|---:|---:|---:|")
    gw, xw = runs["granite", "wall1"][0], runs["xen", "wall1"][0]
    for name, label, _ in OPS + IRQ_OPS:
        a = per_op_ns(gw, name, "granite wall1")
        b = per_op_ns(xw, name, "xen wall1")
        p(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(ratio(a, b), 2)} |")
    for name, label, _ in LATS:
        a = lat_ns(gw, name, "granite wall1")
        b = lat_ns(xw, name, "xen wall1")
        p(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(ratio(a, b), 2)} |")
    name, label, _ = EVTCHN_2VCPUS
    a = per_op_ns(runs["granite", "wall2"][0], name, "granite wall2")
    b = per_op_ns(runs["xen", "wall2"][0], name, "xen wall2")
    p(f"| {label} | {fmt(a)} | {fmt(b)} | {fmt(ratio(a, b), 2)} |")
    name, label = EVTCHN_DOMU
    a = per_op_ns(runs["granite", "domu-wall"][0], name, "granite domu-wall")
    p(f"| {label} | {fmt(a)} | — | — |")
    p("")

    p("## Memory, image size and boot time")
    p("")
    gtext = runs["granite", "icount1"][2]
    m = FRAME_TABLE.search(gtext)
    ft = int(m.group(1)) if m else None
    if ft is None:
        missing.append("granite icount1: no frame-table line")
    mem = MEMORY.search(gtext)
    if mem is None:
        missing.append("granite icount1: no 'Hypervisor memory' line")
    gsize, xsize = int(info["granite_image"]), int(info["xen_image"])
    p("| measurement | granite | Xen 4.17 | granite / Xen | target |")
    p("|---|---:|---:|---:|---|")
    r = ratio(ft, XEN_PAGE_INFO_BYTES)
    p(f"| frame-table bytes per 4 KiB frame | {fmt(ft)} | {XEN_PAGE_INFO_BYTES} (`struct page_info`) | "
      f"{fmt(r, 2)} | ≤ 16 bytes: {'met' if ft is not None and ft <= 16 else '**missed**'} |")
    r = ratio(gsize, xsize)
    p(f"| hypervisor image (bytes) | {gsize:,} | {xsize:,} | {fmt(r, 3)} | ≤ 0.25: "
      f"{'met' if r is not None and r <= 0.25 else '**missed**'} |")
    boots = []
    for hv in ("granite", "xen"):
        e = runs[hv, "icount1"][1]
        if e is None:
            missing.append(f"{hv} icount1: no entry_cntpct line")
            boots.append(None)
        else:
            boots.append(e[0] * 1e9 / e[1] / 1e6)
    p(f"| power-on to dom0's first instruction (ms of `-icount` time = M instructions) | "
      f"{fmt(boots[0], 1)} | {fmt(boots[1], 1)} | {fmt(ratio(boots[0], boots[1]), 2)} | — |")
    if mem:
        total, image, frames, heap, heap_used, pages = (int(x) for x in mem.groups())
        used = image + frames + heap_used + pages
        p(f"| hypervisor memory once dom0 is built: in use (reserved) | {used:,} KiB ({total:,} KiB) | "
          f"not reported | — | — |")
        p("")
        p(f"granite's memory: image with .bss and boot stack {image:,} KiB, frame table {frames:,} KiB "
          f"(for 2 GiB of RAM), Rust heap {heap_used:,} KiB in use of a {heap:,} KiB arena reserved at boot "
          f"(maptrack and grant-table state of later domains come from it), {pages:,} KiB of pages from "
          f"its page allocator (P2M tables, CPU stacks, its own xenheap pages). Xen prints no "
          f"equivalent figure; its frame table alone would take {XEN_PAGE_INFO_BYTES * 524288 // 1024:,} KiB "
          f"for the same 2 GiB.")
    p("")
    p("Boot time is virtual time under `-icount shift=0` (one instruction per nanosecond, every")
    p("CPU's instructions counted) from QEMU's reset to the first instruction of the dom0 kernel,")
    p("which reads the physical counter there; the same `-smp 1` run as the hypercall table.")
    p("")

    p("## Host: the portable core (`cargo bench --bench core`)")
    p("")
    p("The portable core on the simulated machine (the same code as the image, a no-op TLB")
    p("interface). Each P2M operation takes and releases the P2M write lock, as a hypercall does;")
    p("the unmap includes the deferred flush at unlock. Target: the 1 000 000-page case within")
    p("1.5× of the 1-page case. The single-thread rows run pinned to one host CPU (`taskset`),")
    p("which keeps them from drifting with the CPU the host scheduler picks; the contended round")
    p("trip runs one thread per host CPU (at least")
    p("two), each on its own grant frame and GFN of one domain, so every thread takes that")
    p("domain's P2M write lock twice per round trip. Perfect serialisation would make the")
    p("slowest thread 2× slower than one thread alone (with two threads); the rest is every cache")
    p("line of the domain's P2M and grant-table state (lock word, P2M statistics, the shared")
    p("level-3 table, grant-table status) moving between CPUs with the lock. Waiting by reading")
    p("the lock word before retrying the atomic update (test-and-test-and-set, tried) changed")
    p("nothing beyond run-to-run noise.")
    p("")
    host = open(info["host_table"]).read().strip() if info.get("host_table") else ""
    if not host:
        missing.append("host benchmark: no table")
    p(host)
    p("")

    if missing:
        for m in missing:
            print(f"bench: missing: {m}", file=sys.stderr)
        sys.exit(1)
    print("\n".join(out))


if __name__ == "__main__":
    main()
