"""Every random stream of a run derives from the scenario's one seed, keyed by purpose.

Keys are tuples of small integers so a stream does not change when another stream is added.
"""
from __future__ import annotations

import numpy as np

WORKLOAD = 1  # + group index: type assignment and synthetic traces
POLICY = 2  # placement and consolidation policies that draw (random selection)
# 3: sweep repeats (sweep/expand.py)
FAILURES = 4  # + (0, process, host) for host failures, (1, process, rack) for rack failures
OUTPUTS = 5  # the VMs vm_intervals keeps with outputs.vm_intervals: {sample: N}


def stream(seed: int, *key: int) -> np.random.Generator:
    """An independent generator for `key` under `seed`; the same (seed, key) always gives the same draws."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=tuple(key)))
