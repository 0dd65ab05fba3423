#!/usr/bin/env python3
"""Footprint of a firmware image by library, from its linker map, checked against a budget.

    footprint.py MAP [--flash-budget BYTES] [--ram-budget BYTES] [--previous FILE] [--kv]

Flash is every allocated, loaded output section that lives in flash (.vectors, .text, .rodata,
.ARM.exidx, .gnu.sgstubs, and the initial values of .data); RAM is what the image reserves
statically (.data, .bss, .noinit, .stacks). The heap (newlib's, Mbed TLS's records and bignums)
is a run-time figure and not in here.

Each input section is charged to a group by the object it came from (GROUPS below), so the table
says what Mbed TLS, lwIP, the network agent, the core and the C library cost. With a budget the
exit status is 1 when the image is over it, with the table printed, so the build fails visibly.
--previous FILE keeps the last totals and prints the delta against them (the build passes its
own file, so every change shows what it cost). --kv prints key=value lines for the bench scripts.
"""
import argparse
import os
import re
import sys

# (group, regexes on the input object path), first match wins.
GROUPS = [
    ("Mbed TLS", [r"libkeel_mbedtls\.a"]),
    ("lwIP", [r"libkeel_lwip\.a"]),
    ("agent (net/, protocol)", [r"\.dir/net/", r"libkeel_proto\.a", r"nanopb"]),
    ("core (update, debug, crypto wrapper)", [r"libkeel_core\.a", r"libkeel_update\.a",
                                              r"libkeel_dbgsess\.a", r"libkeel_crypto\.a"]),
    ("microvisor", [r"keel-microvisor\.dir/", r"keel_veneers"]),
    ("C library, libgcc", [r"libc_nano\.a", r"libc\.a", r"libnosys\.a", r"libgcc\.a", r"libm\.a"]),
]
KEYS = {"Mbed TLS": "mbedtls", "lwIP": "lwip", "agent (net/, protocol)": "agent",
        "core (update, debug, crypto wrapper)": "core", "microvisor": "microvisor",
        "C library, libgcc": "libc", "other": "other"}
FLASH_SECTIONS = (".vectors", ".text", ".rodata", ".ARM.exidx", ".gnu.sgstubs", ".data")
RAM_SECTIONS = (".data", ".bss", ".noinit", ".stacks")


def group_of(obj):
    for name, pats in GROUPS:
        if any(re.search(p, obj) for p in pats):
            return name
    return "other"


def kind_of(section):
    """(flash, ram) flags of an input section by its name prefix."""
    flash = section.startswith((".text", ".rodata", ".vectors", ".ARM.exidx", ".gnu.sgstubs", ".data"))
    ram = section.startswith((".data", ".bss", ".noinit", ".stacks", "COMMON"))
    return flash, ram


def parse(map_path):
    """Per-group [flash, ram] bytes from input sections, and the output section sizes."""
    per = {}
    outputs = {}
    in_memory_map = False
    pending = None
    with open(map_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("Linker script and memory map"):
                in_memory_map = True
                continue
            if not in_memory_map:
                continue
            if line.startswith("/DISCARD/"):
                break
            m = re.match(r"^(\.\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)", line)
            if m:
                outputs[m.group(1)] = int(m.group(3), 16)
                continue
            if pending is not None:
                m2 = re.match(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)", line)
                if m2:
                    add(per, pending, int(m2.group(2), 16), m2.group(1), m2.group(3))
                pending = None
                continue
            m = re.match(r"^ (\.\S+|COMMON)(?:\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+))?\s*$", line)
            if m and m.group(2) is None:
                pending = m.group(1)
            elif m:
                add(per, m.group(1), int(m.group(3), 16), m.group(2), m.group(4))
    return per, outputs


def add(per, section, size, addr, obj):
    if size == 0 or int(addr, 16) == 0:
        return  # discarded or not allocated
    flash, ram = kind_of(section)
    g = per.setdefault(group_of(obj), [0, 0])
    if flash:
        g[0] += size
    if ram:
        g[1] += size


def kib(n):
    return f"{n / 1024:.1f} KiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("map")
    ap.add_argument("--flash-budget", type=int)
    ap.add_argument("--ram-budget", type=int)
    ap.add_argument("--previous", help="file with the last totals: print the delta, then update it")
    ap.add_argument("--kv", action="store_true", help="key=value lines (bench scripts)")
    ap.add_argument("--name", default=None)
    a = ap.parse_args()

    per, outputs = parse(a.map)
    flash = sum(outputs.get(s, 0) for s in FLASH_SECTIONS)
    ram = sum(outputs.get(s, 0) for s in RAM_SECTIONS)
    if flash == 0:
        print(f"footprint: {a.map}: no output sections found (not a GNU ld map?)", file=sys.stderr)
        return 2

    if a.kv:
        print(f"flash={flash}\nram={ram}")
        for name, _ in GROUPS + [("other", None)]:
            f_, r_ = per.get(name, [0, 0])
            print(f"{KEYS[name]}_flash={f_}\n{KEYS[name]}_ram={r_}")
        return 0

    name = a.name or os.path.basename(a.map).rsplit(".", 1)[0]
    delta = ""
    if a.previous and os.path.exists(a.previous):
        try:
            pf, pr = (int(x) for x in open(a.previous).read().split()[:2])
            if (pf, pr) != (flash, ram):
                delta = f" (flash {flash - pf:+d} B, RAM {ram - pr:+d} B since the last build)"
        except ValueError:
            pass
    over = []
    if a.flash_budget is not None and flash > a.flash_budget:
        over.append(f"flash {flash} B > budget {a.flash_budget} B")
    if a.ram_budget is not None and ram > a.ram_budget:
        over.append(f"RAM {ram} B > budget {a.ram_budget} B")
    fb = f" of {kib(a.flash_budget)}" if a.flash_budget else ""
    rb = f" of {kib(a.ram_budget)}" if a.ram_budget else ""
    print(f"footprint: {name}: flash {kib(flash)}{fb}, static RAM {kib(ram)}{rb}{delta}")
    rows = [(n, *per.get(n, [0, 0])) for n, _ in GROUPS + [("other", None)] if per.get(n)]
    for n, f_, r_ in sorted(rows, key=lambda r: -r[1]):
        print(f"  {n:<38} flash {f_:>7} B {100 * f_ / flash:5.1f} %   RAM {r_:>7} B")
    if over:
        print(f"footprint: {name} is over its budget: {'; '.join(over)}. Find what grew in the table "
              "above; raise the budget (firmware/microvisor/CMakeLists.txt) only with a reason in the "
              "commit.", file=sys.stderr)
        return 1
    if a.previous:
        with open(a.previous, "w") as f:
            f.write(f"{flash} {ram}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
