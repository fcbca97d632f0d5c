"""Scenario checks that need more than the schema: the hardware catalog, the cost model's configurations, the
workload profiles, the network topology and the policy registry.

The scenario package knows only its own fields; this module sits above the cost model and the policies and
hands its checks to the loader, which runs them in the same pass as field validation, so a user sees every
problem at once. `load_scenario` here is the one the API, the CLI and sweeps use.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import networkx as nx

from consolidate.costmodel.config import resolve
from consolidate.errors import Problem, TraceError
from consolidate.hardware import assignment, catalog as cat, reliability
from consolidate.hardware.coremodel import ConfigError
from consolidate.hardware.topology import explicit, host_node
from consolidate.policies import registry
from consolidate.scenario import loader, partitions
from consolidate.scenario.model import LIFECYCLE_KINDS, Scenario
from consolidate.workload.profiles import profile_table


def host_type_refs(data: dict, file: str) -> list[Problem]:
    """Every `hosts[].type` names a catalog host type or one the scenario defines (read from the raw mapping,
    so it reports even when field validation failed)."""
    own = [h.get("name") for h in data.get("host_types") or [] if isinstance(h, dict)] \
        if isinstance(data.get("host_types"), list) else []
    known = sorted({*cat.host_catalog(), *(n for n in own if isinstance(n, str))})
    groups = data.get("hosts")
    problems = []
    for i, group in enumerate(groups if isinstance(groups, list) else []):
        t = group.get("type") if isinstance(group, dict) else None
        if isinstance(t, str) and t not in known:
            problems.append(Problem(file, f"hosts.{i}.type", f"unknown host type (got {t!r}, expected one "
                                    f"of: {', '.join(known)})"))
    return problems


def virtualization_checks(sc: Scenario, file: str) -> list[Problem]:
    """Checks of the overhead model's inputs: catalog names, and every VM group against every host type it
    may land on (a feature its CPU lacks is an error naming both)."""
    problems: list[Problem] = []
    profiles = profile_table().names
    for i, g in enumerate(sc.vms):
        if g.profile not in profiles:
            problems.append(Problem(file, f"vms.{i}.profile", f"unknown profile (got {g.profile!r}, expected one of: "
                                    f"{', '.join(profiles)})"))
    specs = [(f"host_types.{i}.virtualization", h.virtualization) for i, h in enumerate(sc.host_types)] + \
        [(f"vms.{i}.virtualization", g.virtualization) for i, g in enumerate(sc.vms)]
    for path, spec in specs:
        for io_class in assignment.IO_CLASSES:
            given = getattr(spec.io, io_class.name) if spec is not None else None
            known = assignment.paths_of(io_class)
            if given is not None and given not in known:
                problems.append(Problem(file, f"{path}.io.{io_class.name}", f"unknown {io_class.name} I/O path (got "
                                        f"{given!r}, expected one of: {', '.join(known)})"))
        if spec is not None and spec.hypervisor is not None and spec.hypervisor not in cat.hypervisors():
            problems.append(Problem(file, f"{path}.hypervisor", f"unknown hypervisor (got {spec.hypervisor!r}, "
                                    f"expected one of: {', '.join(cat.hypervisors())})"))
    nic_models = [n for n, nic in cat.nics().items() if nic.kind == "sriov"]
    for i, h in enumerate(sc.host_types):
        for j, nic in enumerate(h.nics):
            if nic.model not in nic_models:
                problems.append(Problem(file, f"host_types.{i}.nics.{j}.model", f"unknown NIC (got {nic.model!r}, "
                                        f"expected one of: {', '.join(nic_models)})"))
            elif nic.vfs_per_port is not None and nic.vfs_per_port > cat.nics()[nic.model].vfs_per_port:
                problems.append(Problem(file, f"host_types.{i}.nics.{j}.vfs_per_port", f"more VFs than the NIC "
                                        f"has (got {nic.vfs_per_port}, expected at most "
                                        f"{cat.nics()[nic.model].vfs_per_port} for {nic.model})"))
        if h.cpu is not None and h.cpu not in cat.cpus():
            problems.append(Problem(file, f"host_types.{i}.cpu", f"unknown CPU (got {h.cpu!r}, expected one of: "
                                    f"{', '.join(cat.cpus())})"))
    if not sc.overhead_enabled:
        given = [p for p, spec in specs if spec is not None]
        for p in given:
            problems.append(Problem(file, p, "virtualization settings without the overhead model (expected "
                                    "overhead: {enabled: true} at the top level, or remove them)"))
        return problems
    if problems:
        return problems
    types_ = cat.scenario_host_types(sc)
    used = list(dict.fromkeys(g.type for g in sc.hosts))
    for name in used:
        if types_[name].cpu is None:
            idx = next((i for i, h in enumerate(sc.host_types) if h.name == name), None)
            problems.append(Problem(file, f"host_types.{idx}.cpu" if idx is not None else "hosts",
                                    f"host type {name!r} names no cpu, which the overhead model needs "
                                    f"(expected one of: {', '.join(cat.cpus())})"))
    if problems:
        return problems
    for i, g in enumerate(sc.vms):
        for name in used:
            try:
                resolve(g, types_[name])
            except ConfigError as exc:
                problems.append(Problem(file, f"vms.{i}.virtualization", f"VM group {g.name or f'group{i}'!r} on "
                                        f"host type {name!r} (cpu {types_[name].cpu}): {exc}"))
    return problems



def network_checks(sc: Scenario, file: str) -> list[Problem]:
    """The network must have a port for every host and connect them all (pre-copy migrations use it)."""
    n = sc.network
    n_hosts = sum(g.count for g in sc.hosts)
    if n.topology == "fat-tree":
        if n.k is None or n.k % 2:
            return [Problem(file, "network.k", f"fat-tree needs an even k (got {n.k}, expected 2, 4, 6, ...)")]
        if n.k ** 3 // 4 < n_hosts:
            need = next(k for k in range(2, 10_000, 2) if k ** 3 // 4 >= n_hosts)
            return [Problem(file, "network.k", f"a fat tree with k={n.k} has {n.k ** 3 // 4} host ports (got {n_hosts} "
                            f"hosts, expected k >= {need})")]
    if n.topology == "graph":
        if not n.links:
            return [Problem(file, "network.links", "graph topology needs links (got none, expected "
                            "[[node, node, capacity_bps], ...] with hosts named h0, h1, ...)")]
        g = explicit(n.links)
        missing = [host_node(h) for h in range(n_hosts) if host_node(h) not in g]
        if missing:
            return [Problem(file, "network.links", f"hosts missing from the graph (got no {', '.join(missing[:5])}"
                            f"{' ...' if len(missing) > 5 else ''}, expected nodes h0 .. h{n_hosts - 1})")]
        hosts = [host_node(h) for h in range(n_hosts)]
        comp = nx.node_connected_component(g, hosts[0])
        cut = [h for h in hosts if h not in comp]
        if cut:
            return [Problem(file, "network.links", f"hosts not connected to h0 (got {', '.join(cut[:5])}, "
                            "expected one connected network)")]
    return []


def device_checks(sc: Scenario, file: str) -> list[Problem]:
    """Directly assigned devices: known NVMe models, devices assigned by VM groups only, and a migration policy
    the devices a group holds allow (see hardware/assignment.py)."""
    problems = []
    models = cat.nvme_controllers()
    for i, h in enumerate(sc.host_types):
        for j, n in enumerate(h.nvme):
            if n.model not in models:
                problems.append(Problem(file, f"host_types.{i}.nvme.{j}.model", f"unknown NVMe controller (got "
                                        f"{n.model!r}, expected one of: {', '.join(models)})"))
        io = h.virtualization.io if h.virtualization is not None else None
        for c in assignment.DEVICE_CLASSES:
            path = getattr(io, c) if io is not None else None
            if path in assignment.POOL_OF_PATH:
                problems.append(Problem(file, f"host_types.{i}.virtualization.io.{c}", f"a host type cannot assign "
                                        f"devices to every VM on it (got {path}, expected a shared path; set it on "
                                        "the VM groups that hold a device)"))
    net_class = next(c for c in assignment.IO_CLASSES if c.name == "net")
    shared = [p for p in assignment.paths_of(net_class) if p not in assignment.POOL_OF_PATH]
    if sc.migration.failover_net not in shared:
        problems.append(Problem(file, "migration.failover_net", f"not a shared network path (got "
                                f"{sc.migration.failover_net!r}, expected one of: {', '.join(shared)})"))
    for i, g in enumerate(sc.vms):
        held = assignment.group_holding(g)
        if g.migration_policy == assignment.FAILOVER and assignment.VF not in held.pools:
            net = g.virtualization.io.net if g.virtualization is not None else None
            problems.append(Problem(file, f"vms.{i}.migration_policy", f"migration_policy failover needs "
                                    f"virtualization.io.net sriov, a VF to unplug (got io.net {net or 'unset'})"))
        elif assignment.NVME in held.pools and g.migration_policy != assignment.PINNED:
            problems.append(Problem(file, f"vms.{i}.migration_policy", f"an nvme-passthrough disk pins the VM: its "
                                    f"data is on that host's drive (got {g.migration_policy}, expected pinned)"))
    return problems


def policy_names(data: dict, file: str) -> list[Problem]:
    """`consolidation.policy` parses against the policy registry (names, parameter range) and
    `placement.policy` names a registered placement or alias (read from the raw mapping, so it reports beside
    field validation)."""
    problems = []
    cons = data.get("consolidation")
    text = cons.get("policy") if isinstance(cons, dict) else None
    if isinstance(text, str):
        try:
            registry.parse_policy(text)
        except registry.PolicyError as exc:
            problems.append(Problem(file, "consolidation.policy", str(exc)))
    place = data.get("placement")
    name = place if isinstance(place, str) else place.get("policy") if isinstance(place, dict) else None
    if isinstance(name, str):
        try:
            registry.get_placement(name)
        except registry.PolicyError as exc:
            problems.append(Problem(file, "placement.policy", str(exc)))
    return problems


def consolidation_placement_checks(sc: Scenario, file: str) -> list[Problem]:
    """Without the overhead model, a consolidating datacenter places its VMs as its rounds re-place them (CloudSim's
    allocateHostForVm: power-aware best fit with the detector's overload check); another placement policy would
    be ignored, so it is refused. (With the overhead model a VM's size depends on the host type, and the
    scenario's placement policy places it.)"""
    pabfd = "power-aware-best-fit-decreasing"
    if sc.consolidation is not None and not sc.overhead_enabled and \
            registry.get_placement(sc.placement.policy).name != pabfd:
        return [Problem(file, "placement.policy", f"with dynamic consolidation and no overhead model VMs are "
                        f"placed as consolidation places them (got {sc.placement.policy}, expected {pabfd}, or "
                        "remove consolidation)")]
    return []


def failure_checks(sc: Scenario, file: str) -> list[Problem]:
    """Failure processes name host types the scenario uses; a failure trace is readable and names hosts and racks
    that exist."""
    f = sc.failures
    if f is None:
        return []
    problems = []
    used = list(dict.fromkeys(g.type for g in sc.hosts))
    for kind in ("hosts", "racks"):
        for i, proc in enumerate(getattr(f, kind)):
            if proc.host_type is not None and proc.host_type not in used:
                problems.append(Problem(file, f"failures.{kind}.{i}.host_type", f"no hosts of this type (got "
                                        f"{proc.host_type!r}, expected one of: {', '.join(used)})"))
    if f.trace is not None:
        try:
            rows = reliability.read_trace(sc.base_dir / f.trace)
        except TraceError as exc:
            return problems + [Problem(file, "failures.trace", str(exc))]
        n_hosts = sum(g.count for g in sc.hosts)
        racks = -(-n_hosts // sc.network.hosts_per_rack)
        for i, r in enumerate(rows, start=1):
            top = n_hosts if r.target == "host" else racks
            if r.index >= top:
                problems.append(Problem(file, "failures.trace", f"{sc.base_dir / f.trace}: row {i}: no such {r.target} "
                                        f"(got {r.index}, expected 0..{top - 1})"))
                break
    return problems


def overcommit_checks(sc: Scenario, file: str) -> list[Problem]:
    """cpu_overcommit lets placement pack VMs by their size up to capacity x ratio. A consolidating run re-places
    VMs by their measured demand and its overload detector judges the physical capacity, which it never lets a
    host exceed: there an overcommit ratio would be silently ignored after the first round, so it is refused."""
    if sc.consolidation is not None and sc.cpu_overcommit != 1.0:
        return [Problem(file, "cpu_overcommit", f"overcommit with dynamic consolidation (got {sc.cpu_overcommit:g} "
                        f"with consolidation.policy {sc.consolidation.policy}, expected 1.0: the overload detector "
                        "decides how full a host may get; or remove consolidation)")]
    return []


def lifecycle_checks(sc: Scenario, file: str) -> list[Problem]:
    """VMs that arrive and leave: max_wait_s belongs to the queue; shape tables name the scenario's VM types;
    CloudSim's conventions are refused with lifecycles rather than run wrong (CloudSim 3.0.3's power experiments
    have every VM from the start). The overhead model and failures follow them (engine/lifecycle.py,
    engine/failures.py)."""
    problems = []
    if sc.max_wait_s is not None and sc.on_unplaceable != "queue":
        problems.append(Problem(file, "max_wait_s", f"applies to a queue (got on_unplaceable "
                                f"{sc.on_unplaceable!r}, expected on_unplaceable: queue, or no max_wait_s)"))
    types_ = [v.name for v in sc.vm_types]
    for i, g in enumerate(sc.vms):
        if isinstance(g.shape, dict):
            for key, t in g.shape.items():
                if not re.fullmatch(r"\d+x\d+(\.\d+)?", key):
                    problems.append(Problem(file, f"vms.{i}.shape.{key}", f"a shape is '<vcpus>x<memory_mb>' (got "
                                            f"{key!r}, expected e.g. '2x4096')"))
                if t not in types_:
                    problems.append(Problem(file, f"vms.{i}.shape.{key}", f"unknown VM type (got {t!r}, expected "
                                            f"one of: {', '.join(types_)})"))
        if g.shape != "group" and g.trace.kind in ("planetlab", "synthetic"):
            problems.append(Problem(file, f"vms.{i}.shape", f"{g.trace.kind} traces carry no VM shape (got "
                                    f"{g.shape!r}, expected group)"))
        if g.count is None and g.trace.kind not in (*LIFECYCLE_KINDS, "native") and (g.trace.limit or g.trace.sample):
            problems.append(Problem(file, f"vms.{i}.trace", "limit and sample cut a cluster trace's VMs "
                                    f"(got them with {g.trace.kind}, expected count)"))
        lives = g.start_s is not None or g.end_s is not None or g.trace.kind in LIFECYCLE_KINDS
        if lives:
            if sc.cloudsim_compat:
                problems.append(Problem(file, f"vms.{i}", f"VMs that arrive or leave (start_s, end_s or a "
                                        f"{'/'.join(LIFECYCLE_KINDS)} trace) do not combine with cloudsim_compat "
                                        f"(got both, expected one of them)"))
    return problems


RAW_CHECKS = (host_type_refs, policy_names)
CHECKS = (virtualization_checks, network_checks, device_checks, overcommit_checks,
          consolidation_placement_checks, failure_checks, lifecycle_checks, partitions.problems)


def load_scenario(source: str | Path | dict, *, base_dir: str | Path | None = None,
                  overrides: dict[str, Any] | None = None, sets: dict[str, Any] | None = None) -> Scenario:
    """A scenario validated against its schema and against the catalog, the cost model and the topology
    (see scenario.loader.load_scenario for the arguments). Raises ScenarioError listing every problem.
    A placement alias (pabfd) comes back as its registered name, as the resolved scenario records it."""
    sc = loader.load_scenario(source, base_dir=base_dir, overrides=overrides, sets=sets, raw_checks=RAW_CHECKS,
                              checks=CHECKS)
    sc.placement.policy = registry.get_placement(sc.placement.policy).name
    return sc
