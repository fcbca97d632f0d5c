"""Writes this folder: a small population in the Azure Public Dataset V1 layout (no header rows, gzip), generated
(seed 13), not measured. 24 VMs over 2 days (172,800 s, readings every 300 s): 10 live from the start, the others
created during the two days; 12 deleted before the end. vmdeleted is the start of the VM's last 5-minute slot,
as published. Two join mismatches on purpose: VM `orphan-reading` has 3 readings and no table row, VM
`silent-vm` has a table row and no reading. Run: python tests/data/azure-v1-small/make_fixture.py"""
import gzip
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
DAYS_S, STEP = 172800, 300
rng = np.random.default_rng(13)
shapes = [(1, 1.75), (2, 3.5), (4, 7), (8, 14), (2, 8), (4, 32)]
table, readings = [], []
for v in range(24):
    vm = f"vm{v:02d}"
    created = 0 if v < 10 else int(rng.integers(1, DAYS_S // STEP - 24)) * STEP
    deleted = DAYS_S - STEP if v % 2 else min(DAYS_S - STEP, created + int(rng.integers(24, 288)) * STEP)
    cores, mem = shapes[v % len(shapes)]
    base, amp = rng.uniform(5, 40), rng.uniform(0, 25)
    t = np.arange(created, deleted + STEP, STEP)
    avg = np.clip(base + amp * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 3, len(t)), 0.5, 100)
    for ti, a in zip(t, avg):
        readings.append((int(ti), vm, round(a * 0.6, 6), round(min(100, a * 1.5), 6), round(a, 6)))
    table.append((vm, "sub0", "dep0", created, deleted, round(float(avg.max()), 6), round(float(avg.mean()), 6),
                  round(float(np.percentile(avg, 95)), 6), "Interactive" if v % 3 else "Delay-insensitive", cores, mem))
table.append(("silent-vm", "sub0", "dep0", 0, DAYS_S - STEP, 10, 5, 8, "Unknown", 1, 1.75))
readings += [(t, "orphan-reading", 1.0, 3.0, 2.0) for t in (0, 300, 600)]
readings.sort(key=lambda r: (r[0], r[1]))
(HERE / "vmtable").mkdir(exist_ok=True)
(HERE / "vm_cpu_readings").mkdir(exist_ok=True)
with gzip.GzipFile(HERE / "vmtable" / "vmtable.csv.gz", "wb", mtime=0) as f:
    f.write("".join(",".join(map(str, r)) + "\n" for r in table).encode())
half = [r for r in readings if r[0] < DAYS_S // 2], [r for r in readings if r[0] >= DAYS_S // 2]
for k, part in enumerate(half, 1):
    with gzip.GzipFile(HERE / "vm_cpu_readings" / f"vm_cpu_readings-file-{k}-of-2.csv.gz", "wb", mtime=0) as f:
        f.write("".join(",".join(map(str, r)) + "\n" for r in part).encode())
