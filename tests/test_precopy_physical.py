"""Live migration at the physical limits: pages with headers and zero pages as markers over a TCP stream, no
faster than the sender scans memory, and a switch-over in every stop-and-copy; the engine's migrations carry the
same floor (`consolidate migration`: tests/test_migration_cli.py)."""
from __future__ import annotations

import copy

import pytest

import consolidate
from consolidate.hardware import catalog as cat
from consolidate.policies.precopy import IDEAL, MigrationCosts, physical_costs, postcopy_plan, precopy_plan
from tests.conftest import TINY

GIB = 2**30
TEN_GBE = 10e9 / 8  # bytes/s
KVM = cat.migration_figures("kvm-qemu")


def test_idle_guest_has_a_downtime_floor_and_no_memory_over_bandwidth_floor():
    ideal = precopy_plan(GIB, 0.0, TEN_GBE, 0.03, 30)
    assert ideal.downtime_s == 0.0 and ideal.total_s == pytest.approx(GIB / TEN_GBE)  # 859 ms, no downtime
    idle = precopy_plan(GIB, 0.0, TEN_GBE, 0.03, 30, costs=physical_costs("kvm-qemu", zero_fraction=0.95))
    assert idle.downtime_s == pytest.approx(KVM.switchover_s)  # nothing left to copy: the switch-over alone
    assert idle.downtime_s > 0
    # 5% of the pages travel with 8-byte headers, 95% as 9-byte markers, over TCP framing
    wire = (0.05 * GIB / 4096 * 4104 + 0.95 * GIB / 4096 * 9) / KVM.stream_efficiency
    assert idle.wire_bytes == pytest.approx(wire)
    # the zero-page scan, not the link, sets round 0: the whole gibibyte is read once
    assert idle.total_s == pytest.approx(GIB / KVM.scan_bytes_per_s + KVM.switchover_s)
    assert idle.total_s < 0.4 * ideal.total_s


def test_total_is_sub_linear_in_memory_when_most_of_it_is_zero():
    # the same 1 GiB of data in guests of 1 to 16 GiB: the total grows far slower than the memory
    totals = [precopy_plan(m * GIB, 0.0, TEN_GBE, 0.03, 30,
                           costs=physical_costs("kvm-qemu", zero_fraction=1 - 1 / m)).total_s for m in (1, 4, 16)]
    full = [precopy_plan(m * GIB, 0.0, TEN_GBE, 0.03, 30, costs=physical_costs("kvm-qemu")).total_s
            for m in (1, 4, 16)]
    assert full[2] / full[0] == pytest.approx(16, rel=0.01)  # non-zero memory: linear
    assert totals[2] / totals[0] < 16 * 0.5


def test_busy_guest_rounds_follow_the_closed_form_on_wire_bytes():
    c = physical_costs("kvm-qemu")
    D = 2.5e8  # bytes/s dirtied
    p = precopy_plan(GIB, D, TEN_GBE, 0.03, 30, costs=c)
    per_byte = 4104 / 4096 / c.stream_efficiency / TEN_GBE  # seconds per byte of memory on the wire
    rho = D * per_byte
    for i, v in enumerate(p.volumes_bytes):
        assert v == pytest.approx(GIB * rho ** i)  # V_i = M rho^i with the effective bandwidth
    assert p.downtime_s == pytest.approx(p.volumes_bytes[-1] * per_byte + c.switchover_s)
    # XBZRLE halves what the dirty rounds send: the dirty set shrinks faster, the stop-and-copy comes a round
    # sooner, and both stay within the target plus the switch-over
    z = precopy_plan(GIB, D, TEN_GBE, 0.03, 30, costs=physical_costs("kvm-qemu", dirty_compression_ratio=2.0))
    assert z.rounds == p.rounds - 1 and z.wire_bytes < p.wire_bytes and z.total_s < p.total_s
    assert max(z.downtime_s, p.downtime_s) <= 0.03 + c.switchover_s


def test_postcopy_trades_downtime_for_a_degradation_window():
    c = physical_costs("kvm-qemu")
    post = postcopy_plan(GIB, TEN_GBE, costs=c)
    pre = precopy_plan(GIB, 1.5e9, TEN_GBE, 0.03, 30, costs=c)  # dirtying faster than the link: no convergence
    assert not pre.converged and post.downtime_s == pytest.approx(c.switchover_s)
    assert post.downtime_s < pre.downtime_s / 100  # pre-copy pauses to copy the whole working set again
    assert post.total_s == pytest.approx(c.switchover_s + GIB * 4104 / 4096 / c.stream_efficiency / TEN_GBE)


def test_engine_migrations_carry_the_switch_over():
    sc = copy.deepcopy(TINY)
    sc |= {"hosts": [{"type": "hp-proliant-ml110-g5", "count": 3}], "duration_s": 3600,
           "vm_types": [{"name": "small", "vcpus": 1, "mips_per_vcpu": 500, "memory_mb": 512}],
           "vms": [{"name": "v", "count": 6, "type": "small",
                    "trace": {"synthetic": {"mean": 0.3, "amplitude": 0.0, "noise_std": 0.0}}}],
           "placement": "first-fit", "maintenance": [{"at_s": 600, "hosts": [0]}],
           "migration": {"model": "precopy", "zero_fraction": 0.5, "dirty_pages_per_s_at_full_load": 0}}
    res = consolidate.run(sc)
    m = res.migrations
    assert len(m) > 0
    assert (m.downtime_s >= KVM.switchover_s - 1e-12).all()
    ideal = consolidate.run(sc | {"migration": {**sc["migration"], "costs": "ideal"}}).migrations
    assert (ideal.downtime_s == 0).all()  # an idle guest under the plain closed form: no downtime at all
    assert (m.end_s - m.start_s).sum() < (ideal.end_s - ideal.start_s).sum()  # half its pages are markers
