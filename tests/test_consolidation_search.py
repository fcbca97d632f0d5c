"""The block search PABFD uses at scale (policies.consolidation._FirstFit, policies.placement._Blocks) and the
compiled round (policies.kernel) decide exactly what the full pass over every host decides: same moves, same
placements, on random datacenters."""
import numpy as np
import pytest

from consolidate.policies import consolidation, kernel, placement
from consolidate.policies.registry import SELECTORS, make_detector

LINEAR = np.array([[120.0 + 28 * k for k in range(11)]])
SPECPOWER = np.array([[86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117],
                      [93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135]])


@pytest.fixture(autouse=True)
def compiled_at_any_size(monkeypatch):
    """policies.kernel for datacenters of every size here (a run uses it from kernel.MIN_HOSTS hosts)."""
    monkeypatch.setattr(kernel, "MIN_HOSTS", 0)


def _snapshot(rng, curves, hosts=(2, 150), vms=(1, 900)):
    H, V = int(rng.integers(*hosts)), int(rng.integers(*vms))
    host_type = rng.integers(0, len(curves), H)
    vm_host = np.minimum(rng.integers(-1, max(1, H // 2), V), H - 1)
    vm_dest = np.where((rng.random(V) < 0.05) & (vm_host >= 0), rng.integers(0, H, V), -1)
    demand = rng.uniform(0, 6000, V)
    if rng.random() < 0.3:
        demand = np.round(demand, -3)  # exact ties
    return consolidation.Snapshot(
        vm_host=vm_host, vm_dest=vm_dest, vm_demand_mips=demand, vm_vcpus=rng.choice([1.0, 2.0, 4.0], V),
        vm_ram_mb=rng.choice([2048.0, 4096.0, 8192.0], V), vm_history_mips=rng.uniform(0, 6000, (4, V)),
        host_capacity_mips=np.where(host_type == 0, 80000.0, 60000.0), host_mips_per_core=np.full(H, 2500.0),
        host_memory_mb=np.full(H, 262144.0 if rng.random() < 0.7 else 40000.0), host_type=host_type,
        curves_w=curves, host_migration_intervals=np.zeros(H),
        host_unavailable=rng.random(H) < 0.05 if rng.random() < 0.3 else None)


def _moves(moves):
    return [(m.vm, int(m.source), int(m.destination), m.reason) for m in moves]


@pytest.mark.parametrize("curves", [LINEAR, SPECPOWER, np.vstack([LINEAR[0], 1.3 * LINEAR[0]])],
                         ids=["linear", "specpower", "two-types"])
def test_block_search_decides_as_the_full_pass(curves, monkeypatch):
    rng = np.random.default_rng(7)
    searched = 0
    for _ in range(10):
        s = _snapshot(rng, curves)
        det = make_detector("thr", float(rng.choice([0.6, 0.8, 1.0])))
        drain = rng.random(len(s.host_type)) < 0.1
        fast = [(_moves(consolidation.plan_round(s, det, SELECTORS[sel], np.random.default_rng(3), under)))
                for sel in ("mmt", "mu", "rs") for under in (True, False)]
        fast_drain = consolidation.plan_drain(s, det, drain)
        fast_place = consolidation.place_all(s, det, s.vm_demand_mips)
        with monkeypatch.context() as m:
            m.setattr(consolidation._FirstFit, "find", lambda *a: None)  # every search takes the full pass
            m.setattr(kernel, "MIN_HOSTS", 10**9)  # in Python, not policies.kernel
            full = [(_moves(consolidation.plan_round(s, det, SELECTORS[sel], np.random.default_rng(3), under)))
                    for sel in ("mmt", "mu", "rs") for under in (True, False)]
            full_drain = consolidation.plan_drain(s, det, drain)
            full_place = consolidation.place_all(s, det, s.vm_demand_mips)
        assert fast == full
        assert _moves(fast_drain[0]) == _moves(full_drain[0]) and fast_drain[1] == full_drain[1]
        assert np.array_equal(fast_place, full_place)
        searched += sum(len(f) for f in fast)
    assert searched > 50  # the rounds did move VMs


@pytest.mark.parametrize("curves", [LINEAR, SPECPOWER], ids=["linear", "specpower"])
def test_compiled_round_decides_as_python_on_thousands_of_hosts(curves, monkeypatch):
    """Past policies.kernel.SUPER x BLOCK hosts its search skips whole superblocks: the moves stay the Python
    round's (whose block search the test above checks against the full pass)."""
    rng = np.random.default_rng(5)
    moved = 0
    for _ in range(2):
        s = _snapshot(rng, curves, hosts=(2500, 3500), vms=(15000, 25000))
        det = make_detector("thr", float(rng.choice([0.6, 0.8])))
        for sel in ("mmt", "rs"):
            fast = _moves(consolidation.plan_round(s, det, SELECTORS[sel], np.random.default_rng(3)))
            with monkeypatch.context() as m:
                m.setattr(kernel, "MIN_HOSTS", 10**9)
                slow = _moves(consolidation.plan_round(s, det, SELECTORS[sel], np.random.default_rng(3)))
            assert fast == slow
            moved += len(fast)
    assert moved > 1000


@pytest.mark.parametrize("policy", ["pabfd", "first-fit"])
@pytest.mark.parametrize("curves", [LINEAR, SPECPOWER], ids=["linear", "specpower"])
def test_initial_placement_blocks_place_as_the_full_pass(policy, curves, monkeypatch):
    rng = np.random.default_rng(11)
    for trial in range(10):
        H, V = int(rng.integers(1, 200)), int(rng.integers(1, 1500))
        host_type = rng.integers(0, len(curves), H)
        cap = np.where(host_type == 0, 80000.0, 60000.0)
        sizes = rng.uniform(0, 8000, (V, len(curves)) if trial % 2 else V)
        mem = rng.choice([2048.0, 4096.0, 8192.0], V)
        limit = cap * (1.0 if trial % 5 else 1.5)  # overcommitted hosts take the full pass
        kw = dict(host_capacity_mips=cap, curves_w=curves, host_type=host_type)
        fast = placement.place(policy, sizes, mem, limit, np.full(H, 262144.0), **kw)
        with monkeypatch.context() as m:
            m.setattr(placement._Blocks, "first", lambda *a: -2)  # -2: the full pass decides
            m.setattr(kernel, "MIN_HOSTS", 10**9)  # first-fit in Python too
            full = placement.place(policy, sizes, mem, limit, np.full(H, 262144.0), **kw)
        assert np.array_equal(fast, full)
        assert (fast >= 0).any()


def test_compiled_first_fit_places_as_python_on_thousands_of_hosts(monkeypatch):
    """Past policies.kernel.SUPER x BLOCK hosts the compiled first-fit skips whole superblocks: the same hosts
    as the Python block search."""
    rng = np.random.default_rng(13)
    H, V = 2200, 12000  # more demand than room: the last VMs fit nowhere
    host_type = rng.integers(0, 2, H)
    cap = np.where(host_type == 0, 80000.0, 60000.0)
    unplaced = 0
    for sizes in (rng.uniform(0, 20000, V), rng.uniform(0, 20000, (V, 2))):
        mem = rng.choice([2048.0, 4096.0, 8192.0, 65536.0], V)
        args = (sizes, mem, cap, np.full(H, 262144.0))
        kw = dict(host_type=host_type, host_cpu_used_mips=rng.uniform(0, 40000, H))
        fast = placement.place("first-fit", *args, **kw)
        with monkeypatch.context() as m:
            m.setattr(kernel, "MIN_HOSTS", 10**9)
            slow = placement.place("first-fit", *args, **kw)
        assert np.array_equal(fast, slow)
        assert (fast >= kernel.SUPER * kernel.BLOCK).any()  # past the first superblock
        unplaced += int((fast == -1).sum())
    assert unplaced  # and some fit nowhere


def test_initial_placement_counts_fractional_mips():
    """place_all starts from no VM placed; the loads it adds up must keep fractions of a MIPS. Three VMs of
    266.9 MIPS would put a 1,000-MIPS host at 800.7, past THR 0.8: the third must go to the second host
    (whole-MIPS loads would have seen 798.9 and packed it)."""
    sizes = np.array([266.9, 266.9, 266.9])
    s = consolidation.Snapshot(
        vm_host=np.full(3, -1), vm_dest=np.full(3, -1), vm_demand_mips=sizes, vm_vcpus=np.ones(3),
        vm_ram_mb=np.full(3, 512.0), vm_history_mips=np.zeros((0, 3)),
        host_capacity_mips=np.full(2, 1000.0), host_mips_per_core=np.full(2, 1000.0),
        host_memory_mb=np.full(2, 4096.0), host_type=np.zeros(2, int), curves_w=LINEAR,
        host_migration_intervals=np.zeros(2))
    got = consolidation.place_all(s, make_detector("thr", 0.8), sizes)
    assert sorted(np.bincount(got, minlength=2)) == [1, 2]
