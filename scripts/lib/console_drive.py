#!/usr/bin/env python3
"""Drives a QEMU console the way a person at a serial terminal would.

    console_drive.py LOG TIMEOUT STEPS-FILE -- QEMU-COMMAND...

QEMU is started with its serial port on stdin/stdout (the caller passes `-serial stdio` and no
monitor, so Ctrl-A reaches the guest's UART as typed). STEPS-FILE holds one step per line:

    expect TEXT     wait (from where the previous expect matched) until TEXT is in the output
    send TEXT       type TEXT; the escapes \\r \\n \\xNN are decoded
    sleep SECONDS

Everything QEMU prints goes to LOG. Exit status: 0 when every step was done and QEMU then
exited with status 0, 1 on a step that timed out or QEMU's failure (the step is named on
stderr), 2 when QEMU could not be started.
"""
import os
import select
import subprocess
import sys
import time


def decode(text):
    return text.encode().decode("unicode_escape").encode("latin-1")


def main():
    if len(sys.argv) < 5 or "--" not in sys.argv:
        print(__doc__, file=sys.stderr)
        return 2
    log_path, timeout, steps_path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    steps = []
    with open(steps_path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.strip() and not line.lstrip().startswith("#"):
                verb, _, arg = line.partition(" ")
                steps.append((verb, arg))
    try:
        q = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        print(f"cannot start QEMU: {e}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + timeout
    out = bytearray()
    pos = 0  # where the next expect starts looking
    log = open(log_path, "wb")

    def pump(wait):
        r, _, _ = select.select([q.stdout], [], [], wait)
        if r:
            chunk = os.read(q.stdout.fileno(), 65536)
            if chunk:
                out.extend(chunk)
                log.write(chunk)
                log.flush()
                return True
        return False

    def fail(why):
        print(f"console_drive: {why}", file=sys.stderr)
        q.kill()
        q.wait()
        return 1

    for verb, arg in steps:
        if verb == "expect":
            want = decode(arg)
            while True:
                i = out.find(want, pos)
                if i >= 0:
                    pos = i + len(want)
                    break
                if time.monotonic() > deadline:
                    return fail(f"timed out waiting for {arg!r}")
                if not pump(0.2) and q.poll() is not None:
                    return fail(f"QEMU exited ({q.returncode}) before {arg!r}")
        elif verb == "send":
            # One byte at a time, as typed: a UART's receive FIFO is small.
            for b in decode(arg):
                q.stdin.write(bytes([b]))
                q.stdin.flush()
                pump(0.02)
        elif verb == "sleep":
            end = time.monotonic() + float(arg)
            while time.monotonic() < end:
                pump(0.05)
        else:
            return fail(f"unknown step {verb!r}")
    while q.poll() is None:
        if time.monotonic() > deadline:
            return fail("QEMU did not exit after the last step")
        pump(0.2)
    while pump(0):
        pass
    if q.returncode != 0:
        print(f"console_drive: QEMU exited with status {q.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
