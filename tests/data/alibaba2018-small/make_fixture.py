"""Writes this folder: a small population in Alibaba cluster-trace-v2018's container layout (container_meta.csv,
container_usage.csv; no header rows, as published), generated (seed 18), not measured. 6 containers over 2 hours
with samples about 60 s apart (jitter of +-5 s, as the trace's are irregular); c_3 arrives after 30 minutes,
c_4 leaves after an hour, c_5 has a 15-minute gap; c_1 has two meta rows (allocated, then started). Join
mismatches on purpose: c_orphan has usage rows and no meta row, c_silent a meta row and no usage.
Run: python tests/data/alibaba2018-small/make_fixture.py"""
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
rng = np.random.default_rng(18)
meta, usage = [], []
requests = [100, 200, 400, 400, 800, 1600]
for c in range(6):
    cid = f"c_{c}"
    t0 = 1800 if c == 3 else 0
    t1 = 3600 if c == 4 else 7200
    meta.append((cid, f"m_{c % 3}", t0, f"app_{c % 2}", "allocated" if c == 1 else "started", requests[c],
                 requests[c], round(rng.uniform(1, 10), 2)))
    if c == 1:
        meta.append((cid, f"m_{c % 3}", t0 + 5, "app_1", "started", requests[c], requests[c], meta[-1][-1]))
    t = np.arange(t0, t1, 60) + rng.integers(-5, 6, size=len(np.arange(t0, t1, 60)))
    t[0] = t0
    if c == 5:
        t = t[(t < 3000) | (t >= 3900)]
    util = np.clip(rng.normal(30 + 8 * c, 10, len(t)), 0, 100).round(1)
    for ti, u in zip(t, util):
        usage.append((cid, f"m_{c % 3}", int(ti), u, round(rng.uniform(20, 60), 1), "", "", "", "", "", ""))
meta.append(("c_silent", "m_0", 0, "app_0", "started", 100, 100, 1.0))
usage += [("c_orphan", "m_0", t, 50.0, 10.0, "", "", "", "", "", "") for t in (0, 60)]
usage.sort(key=lambda r: (r[2], r[0]))
(HERE / "container_meta.csv").write_text("".join(",".join(map(str, r)) + "\n" for r in meta))
(HERE / "container_usage.csv").write_text("".join(",".join(map(str, r)) + "\n" for r in usage))
