"""Placement policies: hand-checked choices, and laws that hold for any input (hypothesis)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from consolidate.policies.placement import place

POLICIES = ["first-fit", "best-fit-decreasing", "power-aware-best-fit-decreasing"]
# watts at 0..100 %: type 0 is ML110 G4, type 1 is ML110 G5 (SPECpower, CloudSim 3.0.3)
CURVES = np.array([[86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117],
                   [93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135]], dtype=float)


def _place(policy, cpu, mem, host_cpu, host_mem, host_type=None):
    host_cpu = np.asarray(host_cpu, float)
    host_type = np.zeros(len(host_cpu), int) if host_type is None else np.asarray(host_type)
    return place(policy, np.asarray(cpu, float), np.asarray(mem, float), host_cpu, np.asarray(host_mem, float),
                 host_capacity_mips=host_cpu, curves_w=CURVES, host_type=host_type)


def test_first_fit_keeps_vm_order():
    out = _place("first-fit", [600, 600, 300], [1, 1, 1], [1000, 1000], [10, 10])
    assert out.tolist() == [0, 1, 0]


def test_best_fit_decreasing_takes_the_tightest_host():
    # the biggest VM (700) first: hosts 1 and 2 fit it, host 2 is left with less (100 vs 300);
    # then 250: host 0 would be left with 250, host 1 with 750, host 2 has no room -> host 0
    out = _place("best-fit-decreasing", [250, 700], [1, 1], [500, 1000, 800], [10, 10, 10])
    assert out.tolist() == [0, 2]


def test_pabfd_chooses_least_power_increase():
    # one G4 and one G5 of equal capacity, both empty: 1860 MIPS on 3720 is 50 %;
    # G4 rises 102 - 86 = 16 W, G5 rises 116 - 93.7 = 22.3 W, so the G4 wins
    out = _place("power-aware-best-fit-decreasing", [1860], [1], [3720, 3720], [10, 10], host_type=[1, 0])
    assert out.tolist() == [1]


def test_unplaceable_is_minus_one():
    out = _place("first-fit", [100, 100], [5, 20], [1000], [10])
    assert out.tolist() == [0, -1]


vm_lists = st.lists(st.tuples(st.floats(0, 3000), st.integers(1, 4096)), min_size=1, max_size=60)
host_lists = st.lists(st.tuples(st.sampled_from([3720.0, 5320.0, 8000.0]), st.sampled_from([2048, 4096, 8192]),
                                st.integers(0, 1)), min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(vms=vm_lists, hosts=host_lists, policy=st.sampled_from(POLICIES))
def test_never_exceeds_memory_or_cpu_limit(vms, hosts, policy):
    cpu, mem = np.array([v[0] for v in vms]), np.array([v[1] for v in vms], float)
    hcpu, hmem, htype = (np.array([h[i] for h in hosts]) for i in range(3))
    out = _place(policy, cpu, mem, hcpu, hmem, htype)
    placed = out >= 0
    used_mem = np.bincount(out[placed], weights=mem[placed], minlength=len(hosts))
    used_cpu = np.bincount(out[placed], weights=cpu[placed], minlength=len(hosts))
    assert (used_mem <= hmem + 1e-6).all()
    assert (used_cpu <= hcpu + 1e-6).all()
    # a VM is left out only if no host had room when it was tried; hosts only fill up, so none has room now
    for v in np.flatnonzero(~placed):
        assert not ((used_cpu + cpu[v] <= hcpu + 1e-9) & (used_mem + mem[v] <= hmem + 1e-9)).any()


@pytest.mark.parametrize("policy", POLICIES)
def test_deterministic(policy):
    rng = np.random.default_rng(3)
    cpu, mem = rng.uniform(0, 2000, 200), rng.integers(256, 2048, 200).astype(float)
    hcpu = np.tile([3720.0, 5320.0], 50)
    a = _place(policy, cpu, mem, hcpu, np.full(100, 4096.0), np.tile([0, 1], 50))
    b = _place(policy, cpu, mem, hcpu, np.full(100, 4096.0), np.tile([0, 1], 50))
    assert (a == b).all() and (a >= 0).all()
