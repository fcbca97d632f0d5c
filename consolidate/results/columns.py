"""The column registry: every column of every result frame once, with its unit and meaning.

The summary's columns live in the metric registry (results/metrics.py, with their combine rules); this registry
holds the other frames' and, with them, gives one table of all frame columns (docs/columns.md and the README's
"Result columns", written by scripts/gen_metrics_doc.py; tests/test_columns.py fails when a run's frame has a
column missing here or the docs are stale).

A column's unit is in its name whenever it has a physical one (UNIT_TOKENS); the unitless kinds are ids, counts,
labels, flags and 0..1 fractions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from consolidate.results.metrics import FEATURE_LABELS, SUMMARY_METRICS

# the word of a name (between underscores) that carries each physical unit (`mb` is MiB: consolidate/units.py)
UNIT_TOKENS = {"s": "s", "MIPS": "mips", "W": "w", "kWh": "kwh", "MiB": "mb", "bytes": "bytes", "1/s": "per_s",
               "packets/s": "pps", "IOPS": "iops", "%": "pct", "MIPS-h": "mips_h"}
UNITLESS = ("id", "count", "label", "flag", "fraction")

FRAMES = {
    "summary": "one row: the run's headline figures; combine rules in docs/metrics.md",
    "vm_intervals": "one row per VM per interval; values hold for [time_s, time_s + interval_s); all VMs, a "
                    "seed-drawn sample or none as outputs.vm_intervals says",
    "host_intervals": "one row per host per interval",
    "vms": "one row per VM",
    "hosts": "one row per host",
    "migrations": "one row per migration; with consolidation, drains or failover",
    "maintenance": "one row per VM a drain had to move; with maintenance",
    "failures": "one row per VM a host failure stopped; with failures",
    "overhead_reasons": "one row per interval: the datacenter's exit-driven overhead by exit reason; with the overhead model",
    "datacenter": "one row per interval: VMs live and queued, hosts on; with VMs that arrive or leave",
}

# when a column appears, beyond its frame's own condition; names as the metric registry's features
WHEN = {**FEATURE_LABELS, "always": "always", "lifecycles": "with VMs that arrive or leave"}
_PARAM = re.compile(r"<([a-z_|]+)>")


@dataclass(frozen=True)
class Column:
    frame: str
    name: str  # `<param>` marks a family: one column per value (exit reason, overhead component, ...)
    unit: str  # a UNIT_TOKENS key, or one of UNITLESS
    meaning: str
    when: str = "always"  # a WHEN key

    def names_its_unit(self) -> bool:
        """Whether the name carries the unit (always true of the unitless kinds)."""
        return self.unit not in UNIT_TOKENS or f"_{UNIT_TOKENS[self.unit]}_" in f"_{self.name}_"

    def match(self, column: str) -> bool:
        """Whether `column` is this column (or a member of its family: `<reason>` any name, `<a|b>` one of those)."""
        parts = _PARAM.split(self.name)  # literal, token, literal, ...
        pattern = "".join(re.escape(p) if i % 2 == 0 else
                          ("(?:" + "|".join(map(re.escape, p.split("|"))) + ")" if "|" in p else "[a-z0-9_]+")
                          for i, p in enumerate(parts))
        return re.fullmatch(pattern, column) is not None


_C = Column
FRAME_COLUMNS: tuple[Column, ...] = (
    _C("vm_intervals", "time_s", "s", "start of the interval"),
    _C("vm_intervals", "vm", "id", "VM index (row of `vms`)"),
    _C("vm_intervals", "host", "id", "host the VM ran on (-1: not placed: rejected, queued, not yet arrived or gone)"),
    _C("vm_intervals", "cpu_demand_mips", "MIPS", "the guest's own CPU demand"),
    _C("vm_intervals", "cpu_overhead_mips", "MIPS", "virtualization overhead on the VM's vCPUs", "overhead"),
    _C("vm_intervals", "cpu_backend_mips", "MIPS", "host threads serving the VM's I/O", "overhead"),
    _C("vm_intervals", "cpu_effective_mips", "MIPS", "demand + overhead + backend: what the host is asked for",
       "overhead"),
    _C("vm_intervals", "cpu_served_mips", "MIPS", "CPU served (a share of the effective demand)"),
    _C("vm_intervals", "cpu_unserved_mips", "MIPS", "effective demand not served"),
    _C("vm_intervals", "cpu_queued_mips", "MIPS", "demand while the VM waited in the queue for a host (neither served "
       "nor unserved)", "lifecycles"),
    _C("vm_intervals", "overhead_pct", "%", "overhead / guest demand x 100 (NaN for an idle VM)", "overhead"),
    _C("vm_intervals", "overhead_<component>_mips", "MIPS", "one overhead component (exits, tlb_refill, page_walk, "
       "world_switch, io_guest, io_backend); they add up to overhead + backend", "overhead"),
    _C("vm_intervals", "exits_per_s", "1/s", "VM exits, all reasons", "overhead"),
    _C("vm_intervals", "exits_per_s_<reason>", "1/s", "VM exits of one reason (those that can occur in the scenario)",
       "overhead"),
    _C("vm_intervals", "tlb_flushes_per_s", "1/s", "TLB flushes", "overhead"),
    _C("vm_intervals", "world_switches_per_s", "1/s", "world switches between VMs sharing cores", "overhead"),
    _C("vm_intervals", "net_pps_<demand|served|unserved>", "packets/s", "network packets asked for, carried and not",
       "overhead"),
    _C("vm_intervals", "disk_iops_<demand|served|unserved>", "IOPS", "disk I/Os asked for, carried and not",
       "overhead"),
    _C("vm_intervals", "cpu_migration_loss_mips", "MIPS", "demand lost to migrations (the PDM numerator)",
       "consolidation"),
    _C("host_intervals", "time_s", "s", "start of the interval"),
    _C("host_intervals", "host", "id", "host index (row of `hosts`)"),
    _C("host_intervals", "host_type", "label", "host type"),
    _C("host_intervals", "state", "label", "`on` or `off`"),
    _C("host_intervals", "vms", "count", "VMs on the host"),
    _C("host_intervals", "cpu_capacity_mips", "MIPS", "cores x MIPS per core"),
    _C("host_intervals", "cpu_demand_mips", "MIPS", "CPU its VMs asked for (effective demand)"),
    _C("host_intervals", "cpu_served_mips", "MIPS", "CPU it served"),
    _C("host_intervals", "cpu_util", "fraction", "served / capacity, 0..1"),
    _C("host_intervals", "power_w", "W", "power drawn"),
    _C("host_intervals", "energy_kwh", "kWh", "energy drawn in the interval"),
    _C("host_intervals", "memory_used_mb", "MiB", "memory in use by the VMs on the host at the interval's start: "
       "each VM's trace mem_used_bytes where it has one (at most its provisioned memory), else its provisioned "
       "memory"),
    _C("host_intervals", "cpu_overhead_mips", "MIPS", "virtualization overhead of the VMs on the host at the "
       "interval's start", "overhead"),
    _C("host_intervals", "cpu_backend_mips", "MIPS", "I/O backend threads of the VMs on the host at the interval's "
       "start", "overhead"),
    _C("host_intervals", "time_on_s", "s", "time the host was on in the interval (the SLATAH denominator)",
       "consolidation"),
    _C("host_intervals", "time_overloaded_s", "s", "time on and asked for more than its capacity (the SLATAH "
       "numerator)", "consolidation"),
    _C("vms", "vm", "id", "VM index"),
    _C("vms", "name", "label", "VM name (group#i)"),
    _C("vms", "group", "label", "VM group name"),
    _C("vms", "group_index", "id", "index of the VM within its group"),
    _C("vms", "vm_type", "label", "VM type"),
    _C("vms", "vcpus", "count", "virtual CPUs"),
    _C("vms", "mips_per_vcpu", "MIPS", "MIPS of one vCPU"),
    _C("vms", "memory_mb", "MiB", "memory"),
    _C("vms", "trace", "label", "the trace the VM replays (file, built-in day or synthetic)"),
    _C("vms", "profile", "label", "workload profile filling the guest-event and I/O columns a trace lacks"),
    _C("vms", "start_s", "s", "when the VM arrives (0: at the start)", "lifecycles"),
    _C("vms", "end_s", "s", "when the VM leaves (the run's duration: it stays)", "lifecycles"),
    _C("vms", "host", "id", "host it was placed on at the start (-1: none)"),
    _C("vms", "host_at_end", "id", "host it was on at the end (-1: none)"),
    _C("vms", "retired", "flag", "removed as CloudSim removes a VM that asks for no CPU", "cloudsim_compat"),
    _C("vms", "placed", "flag", "given a host (at the start, or when it arrived or left the queue)"),
    _C("vms", "rejected", "flag", "refused a host (at arrival, or after max_wait_s in the queue)", "lifecycles"),
    _C("vms", "queued_s", "s", "time waited in the queue for a host (NaN: never queued)", "lifecycles"),
    _C("vms", "net_path", "label", "network I/O path (virtio, vhost, sriov, ...)", "overhead"),
    _C("hosts", "host", "id", "host index"),
    _C("hosts", "host_type", "label", "host type"),
    _C("hosts", "cores", "count", "physical cores"),
    _C("hosts", "mips_per_core", "MIPS", "MIPS of one core"),
    _C("hosts", "cpu_capacity_mips", "MIPS", "cores x MIPS per core"),
    _C("hosts", "memory_mb", "MiB", "memory"),
    _C("hosts", "vms", "count", "VMs placed on it at the start"),
    _C("hosts", "memory_used_mb", "MiB", "memory of the VMs placed on it at the start"),
    _C("migrations", "vm", "id", "the VM moved"),
    _C("migrations", "source", "id", "host it left"),
    _C("migrations", "destination", "id", "host it went to"),
    _C("migrations", "reason", "label", "why it moved (overload, underload, drain, ...)"),
    _C("migrations", "start_s", "s", "when it started"),
    _C("migrations", "end_s", "s", "when it ended (NaN: still running at the end)"),
    _C("migrations", "rounds", "count", "pre-copy rounds (the fixed model: 1)"),
    _C("migrations", "bytes", "bytes", "bytes sent"),
    _C("migrations", "downtime_s", "s", "stop-and-copy downtime (cold moves: the whole outage)"),
    _C("migrations", "path", "label", "network links crossed, `a>b` separated by spaces (pre-copy)"),
    _C("migrations", "queued_s", "s", "waited for a free migration slot on either host"),
    _C("migrations", "service_gap_s", "s", "VF failover: unplug and re-plug gaps"),
    _C("maintenance", "drain", "id", "drain index (order in `maintenance`)"),
    _C("maintenance", "at_s", "s", "when the drain began"),
    _C("maintenance", "vm", "id", "the VM"),
    _C("maintenance", "host", "id", "drained host it left (-1: stuck)"),
    _C("maintenance", "outcome", "label", "`moved` or `stuck`"),
    _C("maintenance", "reason", "label", "why a stuck VM stayed (empty when moved)"),
    _C("maintenance", "end_s", "s", "when its migration ended (NaN: stuck or still running)"),
    _C("failures", "host", "id", "the failed host"),
    _C("failures", "start_s", "s", "when it failed"),
    _C("failures", "end_s", "s", "when it was repaired"),
    _C("failures", "vm", "id", "a VM it stopped (-1: it held none)"),
    _C("failures", "restart_host", "id", "where the VM booted again (-1: not by the end)"),
    _C("failures", "restarted_s", "s", "when the VM booted again (NaN: not by the end)"),
    _C("failures", "downtime_s", "s", "restarted_s - start_s (NaN: not restarted)"),
    _C("overhead_reasons", "time_s", "s", "start of the interval"),
    _C("overhead_reasons", "<reason>_mips", "MIPS", "exit-driven overhead of one exit reason, all VMs (only reasons "
       "that occur; `software_mips`: BT callouts, PV hypercalls and injections)"),
    _C("datacenter", "time_s", "s", "start of the interval"),
    _C("datacenter", "vms_live", "count", "VMs alive (arrived, not yet gone)"),
    _C("datacenter", "vms_queued", "count", "VMs waiting in the queue for a host"),
    _C("datacenter", "hosts_active", "count", "hosts on"),
)


def summary_columns() -> tuple[Column, ...]:
    """The summary's columns as registry rows, from the metric registry (its unit names mapped to ours)."""
    units = {"-": "label", "MIPS-h": "MIPS-h", "the column's": "the column's"}
    return tuple(Column("summary", m.name, units.get(m.unit, m.unit), m.definition, m.feature)
                 for m in SUMMARY_METRICS)


def all_columns() -> tuple[Column, ...]:
    return summary_columns() + FRAME_COLUMNS


def lookup(frame: str, column: str) -> Column | None:
    """The registry row of a frame's column, or None when it is not registered."""
    for c in all_columns():
        if c.frame == frame and c.match(column):
            return c
    return None


def unregistered(frames: dict) -> list[str]:
    """`frame.column` for every column of the given frames (name -> DataFrame) missing from the registry."""
    return [f"{f}.{c}" for f, df in frames.items() for c in df.columns if lookup(f, str(c)) is None]


def _when(c: Column) -> str:
    return WHEN.get(c.when, c.when)


def columns_markdown() -> str:
    """docs/columns.md: one table of every frame's columns."""
    lines = ["# Result columns", "",
             "<!-- generated by scripts/gen_metrics_doc.py from consolidate/results/columns.py and metrics.py: "
             "edit those, not this -->", "",
             "Every frame is written as `<frame>.parquet` and `<frame>.csv` (the scenario's `outputs:` chooses which, "
             "and whether CSV; README \"Outputs\"). A column's unit is in its name when it "
             "has one (`_s`, `_mips`, `_w`, `_kwh`, `_mb` = MiB, `bytes`, `_per_s`, `_pps`, `_iops`, `_pct`); ids, "
             "counts, labels, flags and 0..1 fractions have none. A name with `<param>` is a family (one column per "
             "value); `when` says which scenario feature adds it. Summary columns' combine rules: "
             "[metrics.md](metrics.md).", "",
             "| frame | rows |", "|---|---|"]
    lines += [f"| `{f}` | {d} |" for f, d in FRAMES.items()]
    lines += ["", "| frame | column | unit | when | meaning |", "|---|---|---|---|---|"]
    for c in all_columns():
        lines.append(f"| `{c.frame}` | `{c.name}` | {c.unit} | {_when(c)} | {c.meaning.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def readme_frames_bullets() -> str:
    """The README's lines for the frames other than the summary: each frame's columns, those of a feature after."""
    out = []
    for f in FRAMES:
        if f == "summary":
            continue
        cols = [c for c in FRAME_COLUMNS if c.frame == f]
        base = ", ".join(f"`{c.name}`" for c in cols if c.when == "always")
        extra: dict[str, list[str]] = {}
        for c in cols:
            if c.when != "always":
                extra.setdefault(_when(c), []).append(f"`{c.name}`")
        text = f"- `{f}` ({FRAMES[f]}): {base}" if base else f"- `{f}` ({FRAMES[f]})"
        text += "".join(f". {w[0].upper() + w[1:]}: {', '.join(v)}" for w, v in extra.items()) + "."
        out.append(text)
    out.append("- Units and meaning of every column, all frames in one table: [docs/columns.md](docs/columns.md).")
    return "\n".join(_wrap(line) for line in out)


def _wrap(line: str, width: int = 116) -> str:
    words, rows, cur = line.split(" "), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            rows.append(cur)
            cur = "  " + w
        else:
            cur = f"{cur} {w}" if cur else w
    rows.append(cur)
    return "\n".join(rows)
