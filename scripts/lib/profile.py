#!/usr/bin/env python3
"""Instructions per hypervisor function from QEMU `-d exec,nochain,in_asm` traces.

    profile.py ELF LOAD_ADDR TRACE_A ITERS_A TRACE_B ITERS_B [TOP]

Each trace is one run of the benchmark guest with `only=<op>`; the two runs differ only in
the iteration count, so subtracting them cancels boot and set-up and leaves what the extra
iterations cost. Prints instructions per operation for each hypervisor function (symbols from
ELF, linked at LOAD_ADDR), the hypervisor total and the guest total. The count is per
translation block (a block interrupted by an exception counts whole), so it is close, not exact.
"""
import bisect
import collections
import re
import struct
import sys


def symbols(path):
    d = open(path, "rb").read()
    (shoff,) = struct.unpack_from("<Q", d, 0x28)
    shentsize, shnum, _ = struct.unpack_from("<HHH", d, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize) for i in range(shnum)]
    out = []
    for s in secs:
        if s[1] != 2:  # SHT_SYMTAB
            continue
        strtab = secs[s[6]]
        for i in range(s[5] // 24):
            name, info, _, _, value, _ = struct.unpack_from("<IBBHQQ", d, s[4] + i * 24)
            if info & 0xF == 2 and value:  # STT_FUNC
                start = strtab[4] + name
                out.append((value, d[start : d.index(b"\0", start)].decode()))
    out.sort()
    return out


def demangle(n):
    m = re.match(r"_ZN(.*)17h[0-9a-f]{16}E$", n)
    if not m:
        return n
    s, parts = m.group(1), []
    while s:
        mm = re.match(r"(\d+)", s)
        if not mm:
            break
        k = int(mm.group(1))
        s = s[len(mm.group(1)) :]
        parts.append(s[:k])
        s = s[k:]
    name = "::".join(parts)
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$RF$", "&"), ("$C$", ","), ("..", "::")):
        name = name.replace(a, b)
    return name


def block_counts(path):
    """(executions per block start, instructions per block)"""
    size, count, cur = {}, collections.Counter(), None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("Trace "):
                m = re.search(r"\[[0-9a-f]+/([0-9a-f]+)/", line)
                if m:
                    count[int(m.group(1), 16)] += 1
            elif line.startswith("IN:"):
                cur = None
            elif line.startswith("0x") and ":" in line:
                pc = int(line.split(":")[0], 16)
                if cur is None:
                    cur = pc
                    size[cur] = 0
                size[cur] += 1
            elif not line.strip():
                cur = None
    return count, size


def by_function(path, syms, base, span):
    starts = [v for v, _ in syms]
    count, size = block_counts(path)
    fns, guest = collections.Counter(), 0
    for pc, c in count.items():
        n = c * size.get(pc, 1)
        if base <= pc < base + span:
            i = bisect.bisect_right(starts, pc - base) - 1
            fns[demangle(syms[i][1]) if i >= 0 else "?"] += n
        else:
            guest += n
    return fns, guest


def blocks_of(fn, ta, na, tb, nb, syms, base):
    """Per-block executions per operation inside function `fn` (a substring of its name)."""
    starts = [v for v, _ in syms]
    ops = (nb + nb // 8) - (na + na // 8)
    (ca, size), (cb, _) = block_counts(ta), block_counts(tb)
    for pc in sorted(set(ca) | set(cb)):
        if not base <= pc < base + 0x200000:
            continue
        i = bisect.bisect_right(starts, pc - base) - 1
        if i < 0 or fn not in demangle(syms[i][1]):
            continue
        per = (cb[pc] - ca[pc]) / ops
        if per > 0.01:
            print(f"  {pc - base:#8x} +{size.get(pc, 1):3d} insns x {per:6.2f}")


def main():
    if sys.argv[1] == "--blocks":
        fn = sys.argv.pop(2)
        del sys.argv[1]
        elf, base = sys.argv[1], int(sys.argv[2], 16)
        blocks_of(fn, sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6]), symbols(elf), base)
        return
    elf, base = sys.argv[1], int(sys.argv[2], 16)
    ta, na, tb, nb = sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    top = int(sys.argv[7]) if len(sys.argv) > 7 else 30
    syms = symbols(elf)
    span = 0x200000
    fa, ga = by_function(ta, syms, base, span)
    fb, gb = by_function(tb, syms, base, span)
    # measure() runs n + n/8 + 1 operations
    ops = (nb + nb // 8) - (na + na // 8)
    diff = {k: (fb[k] - fa[k]) / ops for k in set(fa) | set(fb)}
    hv = sum(diff.values())
    print(f"per operation: hypervisor {hv:.0f} instructions, guest {(gb - ga) / ops:.0f}")
    for name, n in sorted(diff.items(), key=lambda kv: -kv[1])[:top]:
        if n < 0.5:
            break
        print(f"{n:9.1f} {100 * n / hv:5.1f}%  {name}")


if __name__ == "__main__":
    main()
