"""Independent partitions of a scenario (clusters, zones): which groups form each, the checks, and the
scenario one partition runs as.

A partition is every host group and VM group naming it in `partition:`. Its VMs are placed, consolidated and
migrated on its own hosts only, so partitions can run apart (docs/partitions.md). A partition runs as the
whole scenario with the other partitions' groups kept as empty placeholders (count 0): group indices, and
with them every group's random stream (rng.WORKLOAD + group index) and VM group names, are the whole
scenario's, so a VM draws the same numbers in its partition as anywhere else.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from consolidate.errors import Problem
from consolidate.scenario.model import Scenario

# what a partition cannot hold yet: each names host indices, racks or links that span partitions
_SPANNING = {
    "maintenance": "drains name host indices and racks of the whole datacenter",
    "failures": "failure streams and racks are keyed by the whole datacenter's host indices",
}


def names(sc: Scenario) -> list[str]:
    """The scenario's partitions in order of first mention (host groups first); [] when it declares none."""
    return list(dict.fromkeys([g.partition for g in sc.hosts if g.partition is not None]
                              + [g.partition for g in sc.vms if g.partition is not None]))


def problems(sc: Scenario, file: str) -> list[Problem]:
    """Every problem with the scenario's partitions (none declared: none)."""
    declared = names(sc)
    if not declared:
        return []
    out = []
    groups = [("hosts", i, g) for i, g in enumerate(sc.hosts)] + [("vms", i, g) for i, g in enumerate(sc.vms)]
    for kind, i, g in groups:
        if g.partition is None:
            out.append(Problem(file, f"{kind}.{i}.partition", f"missing (got none, expected one of: "
                               f"{', '.join(declared)}; once a group names a partition every group does)"))
    with_hosts = {g.partition for g in sc.hosts if g.count > 0}
    with_vms = {g.partition for g in sc.vms}
    for i, g in enumerate(sc.vms):
        if g.partition is not None and g.partition not in with_hosts:
            out.append(Problem(file, f"vms.{i}.partition", f"no hosts in this partition (got {g.partition!r}, "
                               f"expected a partition with hosts: {', '.join(sorted(with_hosts)) or 'none'})"))
    for i, g in enumerate(sc.hosts):
        if g.partition is not None and g.partition not in with_vms:
            out.append(Problem(file, f"hosts.{i}.partition", f"no VM group in this partition (got "
                               f"{g.partition!r}, expected a partition with VMs: "
                               f"{', '.join(sorted(p for p in with_vms if p)) or 'none'})"))
    if sc.network.topology != "flat":
        out.append(Problem(file, "network.topology", f"a topology that spans partitions (got "
                           f"{sc.network.topology}, expected flat with partitions: each partition runs alone, "
                           "so links shared across them cannot be modelled)"))
    for field, why in _SPANNING.items():
        if getattr(sc, field):
            out.append(Problem(file, field, f"not supported with partitions yet (got {field}, expected none: "
                               f"{why})"))
    return out


def sub_data(sc: Scenario, name: str) -> dict[str, Any]:
    """The scenario mapping partition `name` runs as: its own groups as they are (without `partition`), the
    others' as empty placeholders that keep every group's index. Validate it with the scenario's base_dir."""
    data = sc.model_dump(mode="json", exclude_defaults=True)
    data["hosts"] = [{"type": g.type, "count": g.count if g.partition == name else 0} for g in sc.hosts]
    vms = []
    for raw, g in zip(data["vms"], sc.vms):
        raw.pop("partition", None)
        if g.partition != name:  # no VMs, no trace to read, no devices; the same type rule and name
            raw = {"name": g.name, "count": 0, "type": g.type.model_dump(mode="json"),
                   "trace": {"synthetic": {"mean": 0.0}}}
            raw = {k: v for k, v in raw.items() if v is not None}
        vms.append(raw)
    data["vms"] = vms
    return data


def host_order(sc: Scenario) -> np.ndarray:
    """The host group of each host index of the whole scenario (host_order: groups or interleaved)."""
    group = np.concatenate([np.full(g.count, i, dtype=np.int64) for i, g in enumerate(sc.hosts)])
    if sc.host_order == "interleaved":  # as engine.state.HostTable: the k-th host of each group shares rank k
        rank = np.concatenate([np.arange(g.count) for g in sc.hosts])
        group = group[np.argsort(rank, kind="stable")]
    return group


def host_indices(sc: Scenario, name: str) -> np.ndarray:
    """The whole scenario's index of each host of partition `name`, in the partition's own host order (its
    hosts keep their relative order in both orders, interleaved or not)."""
    members = np.array([g.partition == name for g in sc.hosts], dtype=bool)
    return np.flatnonzero(members[host_order(sc)]).astype(np.int32)
