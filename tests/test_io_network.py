"""The network model option: links with latency in every topology, and SimGrid's LV08 flow model (RTT-weighted
max-min with its bandwidth and latency factors and the TCP window bound) beside the default unweighted max-min."""
from __future__ import annotations

import numpy as np
import pytest
import simpy

import consolidate
from consolidate.engine.flows import (LV08_BANDWIDTH_FACTOR, LV08_LATENCY_FACTOR, LV08_TCP_GAMMA_BYTES,
                                      LV08_WEIGHT_S_BYTES, Flows, maxmin_ids)
from consolidate.hardware.topology import Network, build_topology, explicit
from consolidate.scenario.model import NetworkSpec

GB = 1e9


def _two_paths() -> Network:
    """h0 and h2 both send to h1 through the switch s and its 1 Gbit/s link to h1 (the shared bottleneck); h0 is
    one hop from s (0.1 ms), h2 three hops (1 ms each)."""
    return Network(explicit([("h0", "s", 10 * GB, 1e-4), ("s", "h1", GB, 1e-4), ("h2", "a", 10 * GB, 1e-3),
                             ("a", "b", 10 * GB, 1e-3), ("b", "s", 10 * GB, 1e-3)]))


def _run(net: Network, sharing: str, transfers: list[tuple[int, int, float]]) -> tuple[list[float], Flows]:
    env = simpy.Environment()
    flows = Flows(env, net, 1.0, sharing)
    out = [None] * len(transfers)

    def go(i, src, dst, nbytes):
        out[i] = yield from flows.transfer(src, dst, nbytes)

    for i, (src, dst, nbytes) in enumerate(transfers):
        env.process(go(i, src, dst, nbytes))
    env.run()
    return out, flows


def _penalty(net: Network, src: int, dst: int) -> float:
    ids = net.link_ids(src, dst)
    return float(net.latencies[ids].sum() + (LV08_WEIGHT_S_BYTES / (net.capacities[ids] / 8)).sum())


def test_default_maxmin_shares_equally_whatever_the_path_length():
    net = _two_paths()
    rates = maxmin_ids([net.link_ids(0, 1), net.link_ids(2, 1)], net.capacities)
    assert rates[0] == rates[1] == GB / 2
    (t_short, t_long), _ = _run(net, "maxmin", [(0, 1, 1e8), (2, 1, 1e8)])
    assert t_short == t_long == pytest.approx(2 * 1e8 * 8 / GB)  # latency plays no part by default


def test_lv08_shares_a_bottleneck_by_rtt_weight():
    net = _two_paths()
    p_short, p_long = _penalty(net, 0, 1), _penalty(net, 2, 1)
    assert p_long > p_short
    rates = maxmin_ids([net.link_ids(0, 1), net.link_ids(2, 1)], net.capacities, np.array([p_short, p_long]))
    assert rates.sum() == pytest.approx(GB)
    assert rates[0] / rates[1] == pytest.approx(p_long / p_short)  # inversely proportional to the penalties
    # two migrations' rounds of equal size: the short path's finishes first, the long one's then runs alone
    size = 1e8
    (t_short, t_long), _ = _run(net, "lv08", [(0, 1, size), (2, 1, size)])
    assert t_short < t_long
    lat_short = LV08_LATENCY_FACTOR * net.latencies[net.link_ids(0, 1)].sum()
    lat_long = LV08_LATENCY_FACTOR * net.latencies[net.link_ids(2, 1)].sum()
    # by hand: the short flow waits its latency, runs alone until the long one's latency is paid, then shares
    # the link in proportion to 1/penalty, each no faster than 0.97 of the link
    bound = LV08_BANDWIDTH_FACTOR * GB
    alone = (lat_long - lat_short) * bound
    share = GB * (1 / p_short) / (1 / p_short + 1 / p_long)
    assert share < bound
    expect_short = lat_long + (size * 8 - alone) / share
    assert t_short == pytest.approx(expect_short, rel=1e-9)


def test_lv08_single_flow_matches_simgrid_semantics():
    """One flow alone: it waits latency_factor x its route's latency, then runs at min(bandwidth_factor x its
    slowest link, TCP_gamma / (2 x latency)) (SimGrid network_cm02.cpp, LV08 configuration)."""
    size = 5e7
    for latency, expect_bps in ((1e-3, LV08_BANDWIDTH_FACTOR * GB),  # the bandwidth factor binds
                                (0.05, LV08_TCP_GAMMA_BYTES * 8 / (2 * 0.05))):  # the TCP window binds
        net = Network(explicit([("h0", "h1", GB, latency)]))
        (t,), _ = _run(net, "lv08", [(0, 1, size)])
        assert t == pytest.approx(LV08_LATENCY_FACTOR * latency + size * 8 / expect_bps, rel=1e-12)
    assert LV08_TCP_GAMMA_BYTES * 8 / (2 * 0.05) < LV08_BANDWIDTH_FACTOR * GB


@pytest.mark.parametrize("spec", [{"topology": "flat"}, {"topology": "leaf-spine", "hosts_per_rack": 2},
                                  {"topology": "fat-tree", "k": 4},
                                  {"topology": "graph", "links": [["h0", "s", 1e9], ["s", "h1", 1e9],
                                                                  ["s", "h2", 1e9, 0.002], ["s", "h3", 1e9]]}])
def test_every_topology_has_link_latencies(spec):
    ns = NetworkSpec(**spec, link_latency_s=1e-4, uplink_latency_s=5e-4)
    net = Network(build_topology(ns, [1e9] * 4))
    lat = net.latencies[net.link_ids(0, 3)].sum()
    hops = len(net.path(0, 3))
    if spec["topology"] in ("flat", "graph"):
        assert lat == pytest.approx(hops * 1e-4)
    else:  # two host links, the rest between switches
        assert lat == pytest.approx(2 * 1e-4 + (hops - 2) * 5e-4)
    if spec["topology"] == "graph":
        assert net.latencies[net.link_ids(0, 2)].sum() == pytest.approx(1e-4 + 0.002)


def test_default_network_is_unweighted_maxmin_without_latency():
    ns = NetworkSpec()
    assert (ns.sharing, ns.link_latency_s, ns.uplink_latency_s) == ("maxmin", 0.0, 0.0)


def test_lv08_in_a_run(tmp_path, tiny):
    """A consolidating run with pre-copy over an LV08 network: the migrations take longer than under max-min
    (latency paid, 0.97 of the link)."""
    def run(sharing):
        sc = dict(tiny)
        sc |= {"hosts": [{"type": "hp-proliant-ml110-g5", "count": 6}], "duration_s": 7200, "interval_s": 300,
               "vm_types": [{"name": "a", "vcpus": 1, "mips_per_vcpu": 2000, "memory_mb": 1024},
                            {"name": "b", "vcpus": 1, "mips_per_vcpu": 1000, "memory_mb": 512}],
               "vms": [{"name": "v", "count": 10, "type": {"rule": "cycle", "types": ["a", "b"]},
                        "trace": {"synthetic": {"mean": 0.4, "amplitude": 0.35, "period_s": 3600,
                                                "noise_std": 0.15}}}],
               "consolidation": {"policy": "thr-mmt-0.8"}, "migration": {"model": "precopy"},
               "network": {"sharing": sharing, "link_latency_s": 0.001}}
        return consolidate.run(sc)

    a, b = run("maxmin"), run("lv08")
    assert len(a.migrations) > 0
    assert len(a.migrations) == len(b.migrations)
    da = (a.migrations["end_s"] - a.migrations["start_s"]).sum()
    db = (b.migrations["end_s"] - b.migrations["start_s"]).sum()
    assert db > da
