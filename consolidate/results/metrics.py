"""The summary metrics, each defined once: column, unit, definition, feature, and how parts of a run combine.

The summary's column set and order, the sweep's headline metrics, the `drain_impact_<column>` columns and
the generated documentation (docs/metrics.md, the README's summary bullet) all read `SUMMARY_METRICS`.

A family (a name with one `<param>`, e.g. `exits_per_s_<reason>`) stands for one column per value of the
parameter. Adjacent families over the same parameter form one block that the summary lays out value by
value (`overhead_pct_net_virtio`, `net_pps_served_mean_virtio`, `overhead_pct_net_vhost`, ...).

`combine` says how the values of consecutive time slices of one run (each summarised as if it were a run
of its own) give the whole run's value; see COMBINE_RULES. Independent partitions of a run (disjoint hosts
and VMs over the same time) combine by `combine_partitions`: PARTITION_RULES lists where their rule differs
(a maximum over time of a datacenter total is not the maximum of the partitions' maxima).
"""
from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd

FEATURES = ("always", "cloudsim_compat", "consolidation", "maintenance", "failover", "failures", "overhead",
            "lifecycles", "trace_warnings")
FEATURE_LABELS = {"always": "always", "cloudsim_compat": "with `cloudsim_compat`",
                  "consolidation": "with consolidation", "maintenance": "with maintenance",
                  "failover": "with failover VMs", "failures": "with failures",
                  "overhead": "with the overhead model", "lifecycles": "with VMs that arrive or leave",
                  "trace_warnings": "when reading the traces changed something"}

COMBINE_RULES = {
    "first": "the same in every part (identity, configuration, or the state at the start of the run)",
    "last": "the last part's value (a state at the end of the run)",
    "sum": "the sum of the parts",
    "max": "the largest of the parts",
    "min": "the smallest of the parts",
    "mean_time_weighted": "the parts' mean weighted by their `duration_s` (times the `of` metric, if any)",
    "mean_weighted": "the parts' mean weighted by the `of` metric",
    "ratio": "the combined numerator over the combined denominator (`of`), x 100 for a %",
    "product": "the product of the combined `of` metrics",
    "difference": "the column named by the parameter, combined in the runs with and without the drains, "
                  "then subtracted",
    "recompute": "not combinable from the parts' summaries: its numerator and denominator are not summary "
                 "columns, so a part must carry them",
}

_PARAM = re.compile(r"<([a-z_]+)>")


@dataclass(frozen=True)
class Metric:
    """One summary column, or a family of them (a name with one `<param>`)."""

    name: str
    unit: str  # "-" for identity text
    feature: str  # one of FEATURES: when the summary has it
    combine: str  # one of COMBINE_RULES
    definition: str
    of: tuple[str, ...] = ()  # the metrics the combine rule reads (ratio: numerator, denominator)
    headline: int = 0  # place among a sweep's headline metrics (1 = first); 0: not one
    impact: int = 0  # place among the drain_impact_<column> columns (1 = first); 0: none reported

    @property
    def param(self) -> str | None:
        """The family's parameter name, or None for a single column."""
        m = _PARAM.search(self.name)
        return m.group(1) if m else None

    def column(self, value: str) -> str:
        """The family's column for one parameter value."""
        return _PARAM.sub(value, self.name)

    def match(self, column: str) -> str | None:
        """The parameter value if `column` belongs to this family, else None."""
        head, tail = self.name.split(f"<{self.param}>")
        ok = column.startswith(head) and column.endswith(tail) and len(column) > len(head) + len(tail)
        return column[len(head):len(column) - len(tail)] if ok else None


_M = Metric
SUMMARY_METRICS: tuple[Metric, ...] = (
    _M("scenario", "-", "always", "first", "the scenario's name"),
    _M("run_id", "-", "always", "first", "the run's id (start time and seed, or the sweep's run key)"),
    _M("seed", "-", "always", "first", "the seed of every random stream of the run"),
    _M("scenario_sha256", "-", "always", "first", "hash of the validated scenario (after defaults)"),
    _M("consolidate_version", "-", "always", "first", "the installed consolidate version"),
    _M("duration_s", "s", "always", "sum", "simulated time"),
    _M("interval_s", "s", "always", "first", "accounting interval"),
    _M("hosts", "count", "always", "first", "hosts in the datacenter"),
    _M("vms", "count", "always", "first", "VMs in the scenario"),
    _M("vms_placed", "count", "always", "first", "VMs given a host at the start (VMs that arrive: at the start or "
       "when they arrived or left the queue)"),
    _M("vms_rejected", "count", "always", "first", "VMs that found no host at the start (VMs that arrive: at "
       "arrival, or after max_wait_s in the queue)"),
    _M("hosts_active_mean", "count", "always", "mean_time_weighted",
       "hosts on, mean over the intervals", headline=2, impact=2),
    _M("hosts_active_max", "count", "always", "max", "hosts on, most in one interval"),
    _M("energy_kwh", "kWh", "always", "sum", "energy drawn by all hosts", headline=1, impact=1),
    _M("power_w_mean", "W", "always", "mean_time_weighted", "datacenter power, mean over the intervals"),
    _M("power_w_max", "W", "always", "max", "datacenter power, highest interval"),
    _M("host_cpu_util_mean", "fraction", "always", "mean_time_weighted",
       "served over capacity, mean over the powered-on host-intervals", of=("hosts_active_mean",)),
    _M("cpu_demand_mips_h", "MIPS-h", "always", "sum", "the guests' own CPU demand (placed or not)"),
    _M("cpu_served_mips_h", "MIPS-h", "always", "sum", "CPU the hosts served (guest work, overhead, backend)"),
    _M("cpu_effective_mips_h", "MIPS-h", "always", "sum",
       "CPU the hosts were asked for: guest demand + overhead + backend (= cpu_demand_mips_h without the "
       "overhead model)"),
    _M("cpu_unserved_mips_h", "MIPS-h", "always", "sum",
       "effective demand not served, rejected VMs' demand included"),
    _M("cpu_rejected_mips_h", "MIPS-h", "always", "sum", "effective demand of the VMs rejected at the start"),
    _M("sla_unserved_fraction", "fraction", "always", "ratio", "effective demand not served, over effective demand",
       of=("cpu_unserved_mips_h", "cpu_effective_mips_h"), headline=3, impact=3),
    _M("vms_retired", "count", "cloudsim_compat", "sum", "VMs removed as CloudSim removes a VM asking for no CPU"),
    _M("policy", "-", "consolidation", "first", "the consolidation policy"),
    _M("migration_model", "-", "consolidation", "first", "the live-migration model"),
    _M("migrations", "count", "consolidation", "sum", "migrations started (consolidation and drains)",
       headline=4, impact=6),
    _M("host_on_s", "s", "consolidation", "sum", "time hosts were on, summed over hosts"),
    _M("host_overloaded_s", "s", "consolidation", "sum",
       "time hosts were on and asked for more than their capacity, summed over hosts"),
    _M("slatah", "fraction", "consolidation", "ratio",
       "SLA time per active host: host time asked for more than capacity over host time on",
       of=("host_overloaded_s", "host_on_s"), impact=4),
    _M("pdm", "fraction", "consolidation", "mean_weighted",
       "performance degradation due to migration: demand lost to migrations over effective demand",
       of=("cpu_effective_mips_h",), impact=5),
    _M("slav", "fraction", "consolidation", "product", "SLA violation: slatah x pdm", of=("slatah", "pdm"),
       headline=5),
    _M("esv", "kWh", "consolidation", "product", "energy and SLA violation: energy_kwh x slav",
       of=("energy_kwh", "slav")),
    _M("downtime_s_total", "s", "consolidation", "sum", "migrations' stop-and-copy downtime, summed",
       impact=7),
    _M("migration_bytes", "bytes", "consolidation", "sum", "bytes the migrations sent"),
    _M("host_shutdowns", "count", "consolidation", "sum",
       "hosts emptied: holding VMs at one interval edge and none at the next (the last edge is the end)"),
    _M("drains", "count", "maintenance", "sum", "maintenance drains"),
    _M("drain_vms_moved", "count", "maintenance", "sum", "VMs a drain moved off its hosts (per drain)"),
    _M("drain_vms_stuck", "count", "maintenance", "last", "VMs a drain could not move (per drain)"),
    _M("drain_hosts_not_emptied", "count", "maintenance", "last", "drained hosts still holding a VM at the end"),
    _M("drain_evacuation_s_max", "s", "maintenance", "max",
       "from a drain to the end of its last migration, longest drain (NaN: none finished)"),
    _M("failover_vms", "count", "failover", "first", "VMs with migration_policy failover"),
    _M("failover_paravirtual_s_total", "s", "failover", "sum",
       "time failover VMs spent on their paravirtual NIC, summed over VMs"),
    _M("failover_service_gap_s_total", "s", "failover", "sum", "service gaps of VF unplugs and re-plugs, summed"),
    _M("failover_replugs", "count", "failover", "sum", "VFs given back to failover VMs"),
    _M("failover_waiting_at_end", "count", "failover", "last", "failover VMs still paravirtual at the end"),
    _M("host_failures", "count", "failures", "sum", "host failures (a rack failure counts each of its hosts)"),
    _M("vm_failures", "count", "failures", "sum", "VMs stopped by a failure of their host"),
    _M("vm_failure_downtime_s_total", "s", "failures", "sum",
       "from each VM's stop to its restart (or the end of the run), summed over VMs"),
    _M("vms_waiting_for_restart_max", "count", "failures", "max",
       "most VMs past their restart delay with no host to boot on at once"),
    _M("failure_lost_mips_h", "MIPS-h", "failures", "sum",
       "work failures cost: a stopped VM's whole interval, then its demand while down"),
    _M("availability_min", "fraction", "failures", "min",
       "the least available VM's share of the run spent running (VMs that arrive or leave: of its life in the run)"),
    _M("availability_p50", "fraction", "failures", "recompute",
       "the median VM's share of the run spent running (VMs that arrive or leave: of its life in the run)"),
    _M("availability_min_<group>", "fraction", "failures", "min", "availability_min over one VM group's VMs"),
    _M("availability_p50_<group>", "fraction", "failures", "recompute", "availability_p50 over one VM group's VMs"),
    _M("overhead_mips_h", "MIPS-h", "overhead", "sum", "virtualization overhead the VMs incur"),
    _M("backend_mips_h", "MIPS-h", "overhead", "sum", "host threads serving the VMs' I/O"),
    _M("virt_cpu_mips_h", "MIPS-h", "overhead", "sum", "overhead_mips_h + backend_mips_h"),
    _M("overhead_pct_mean", "%", "overhead", "ratio", "overhead_mips_h / cpu_demand_mips_h x 100 (backend excluded)",
       of=("overhead_mips_h", "cpu_demand_mips_h"), headline=6),
    _M("overhead_<component>_mips_h", "MIPS-h", "overhead", "sum",
       "one overhead component (exits, tlb_refill, page_walk, world_switch, io_guest, io_backend); they add up "
       "to overhead + backend"),
    _M("exits_per_s_<reason>", "1/s", "overhead", "mean_time_weighted",
       "VM exits of one reason, all VMs together, mean over the intervals"),
    _M("tlb_flushes_per_s", "1/s", "overhead", "mean_time_weighted",
       "TLB flushes, all VMs together, mean over the intervals"),
    _M("virt_cpu_mips_h_net_<path>", "MIPS-h", "overhead", "sum",
       "overhead + backend of the VMs on one network I/O path"),
    _M("cpu_demand_mips_h_net_<path>", "MIPS-h", "overhead", "sum", "guest demand of the VMs on one network I/O path"),
    _M("overhead_pct_net_<path>", "%", "overhead", "ratio",
       "(overhead + backend) / guest demand x 100 of the VMs on one network I/O path",
       of=("virt_cpu_mips_h_net_<path>", "cpu_demand_mips_h_net_<path>")),
    _M("net_pps_served_mean_<path>", "packets/s", "overhead", "mean_time_weighted",
       "packets served to the VMs on one network I/O path, all together, mean over the intervals"),
    _M("net_packets_demand", "count", "overhead", "sum", "network packets the VMs asked for"),
    _M("net_packets_unserved", "count", "overhead", "sum", "network packets asked for and not carried"),
    _M("net_pps_unserved_fraction", "fraction", "overhead", "ratio", "packets not served over packets asked for",
       of=("net_packets_unserved", "net_packets_demand")),
    _M("vms_arrived", "count", "lifecycles", "sum", "VMs that arrived after the start"),
    _M("vms_departed", "count", "lifecycles", "sum", "VMs whose life ended before the end of the run"),
    _M("vms_queued", "count", "lifecycles", "sum", "VMs that waited in the queue for a host (on_unplaceable: queue)"),
    _M("queue_wait_s_p50", "s", "lifecycles", "recompute", "median wait of the VMs that queued (0: none did)"),
    _M("queue_wait_s_p95", "s", "lifecycles", "recompute", "95th percentile wait of the VMs that queued"),
    _M("queue_wait_s_max", "s", "lifecycles", "max", "longest wait in the queue (to placement, rejection, departure "
       "or the end of the run)"),
    _M("vms_live_max", "count", "lifecycles", "max", "VMs alive in one interval, most"),
    _M("cpu_queued_mips_h", "MIPS-h", "lifecycles", "sum",
       "demand of VMs while they waited in the queue (neither served nor unserved: demand = served + unserved + "
       "queued)"),
    _M("trace_samples_clipped", "count", "trace_warnings", "first", "trace samples above 100% utilisation clipped "
       "to 100% (over_100: clip)"),
    _M("trace_warnings", "count", "trace_warnings", "first", "warnings from reading the traces (VMs left out, "
       "samples clipped; the report lists them)"),
    _M("wall_s", "s", "always", "sum", "wall-clock time from loading the scenario to the results (not writing)"),
    _M("drain_impact_<column>", "the column's", "maintenance", "difference",
       "the column with minus without the drains (a second run, same seed; maintenance_baseline: false skips it)"),
)
del _M

_BY_NAME = {m.name: m for m in SUMMARY_METRICS}
_FAMILIES = tuple(m for m in SUMMARY_METRICS if m.param)


def _ranked(flag: str) -> tuple[str, ...]:
    return tuple(m.name for m in sorted((m for m in SUMMARY_METRICS if getattr(m, flag)),
                                        key=lambda m: getattr(m, flag)))


HEADLINE_METRICS = _ranked("headline")  # the sweep table's and plots' metrics, in their order
IMPACT_METRICS = _ranked("impact")  # the columns drain_impact_<column> is reported for, in their order


def lookup(column: str) -> Metric:
    """The metric (or family) a summary column belongs to; KeyError if none."""
    if column in _BY_NAME and not _BY_NAME[column].param:
        return _BY_NAME[column]
    for m in _FAMILIES:
        value = m.match(column)
        if value and (m.combine != "difference" or value in IMPACT_METRICS):
            return m
    raise KeyError(f"summary column {column!r} is not a registered metric (consolidate/results/metrics.py)")


def unit(column: str) -> str:
    """The unit of a summary column (a drain impact has its column's unit)."""
    m = lookup(column)
    return unit(m.match(column)) if m.combine == "difference" else m.unit


def summary_columns(values: Mapping[str, object], features: set[str]) -> list[str]:
    """The registry's order of the computed summary `values`.

    Raises RuntimeError if a value is not registered, belongs to a feature that is off, or if a single
    column of an enabled feature was not computed (families may be empty).
    """
    unknown = []
    for c in values:
        try:
            if lookup(c).feature not in features:
                unknown.append(f"{c} (feature {lookup(c).feature} is off)")
        except KeyError:
            unknown.append(c)
    missing = [m.name for m in SUMMARY_METRICS if m.feature in features and not m.param and m.name not in values]
    if unknown or missing:
        raise RuntimeError(f"summary and metric registry disagree: not registered: {unknown}; "
                           f"registered but not computed: {missing}")
    order: list[str] = []
    i = 0
    while i < len(SUMMARY_METRICS):
        m = SUMMARY_METRICS[i]
        if not m.param:
            order += [m.name] if m.name in values else []
            i += 1
            continue
        block = [m]
        while i + len(block) < len(SUMMARY_METRICS) and SUMMARY_METRICS[i + len(block)].param == m.param:
            block.append(SUMMARY_METRICS[i + len(block)])
        # parameter values in the order they were computed, each laying out the whole block
        params = dict.fromkeys(v for c in values for f in block if (v := f.match(c)) and lookup(c) is f)
        order += [f.column(v) for v in params for f in block if f.column(v) in values]
        i += len(block)
    return order


def summary_frame(values: Mapping[str, object], features: set[str]) -> pd.DataFrame:
    """The one-row summary of `values`, columns in the registry's order (see `summary_columns`)."""
    return pd.DataFrame([values], columns=summary_columns(values, features))


def combine(column: str, parts: Sequence[Mapping[str, float]]) -> float:
    """The whole run's value of `column` from its parts' summaries (consecutive time slices, in order).

    Raises ValueError for a column whose rule needs more than the parts' summaries (recompute, difference).
    """
    m = lookup(column)
    rule = m.combine
    if rule in ("recompute", "difference"):
        raise ValueError(f"{column}: {COMBINE_RULES[rule]}")
    if rule == "ratio":
        # a family's ratio reads the same parameter value of its numerator and denominator families
        value = m.match(column) if m.param else None
        num, den = (combine(o.replace(f"<{m.param}>", value) if value else o, parts) for o in m.of)
        return num / den * (100 if m.unit == "%" else 1) if den > 0 else 0.0
    if rule == "product":
        return math.prod(combine(o, parts) for o in m.of)
    vals = [p[column] for p in parts]
    if rule in ("mean_time_weighted", "mean_weighted"):
        by = (("duration_s",) if rule == "mean_time_weighted" else ()) + m.of
        w = [math.prod(p[o] for o in by) for p in parts]
        return sum(wi * v for wi, v in zip(w, vals)) / sum(w) if sum(w) > 0 else 0.0
    return {"first": vals[0], "last": vals[-1], "sum": sum(vals), "max": max(vals), "min": min(vals)}[rule]


# How independent partitions (disjoint hosts and VMs, the same clock) combine, where it differs from `combine`:
# (rule, of). `recompute` here: from the merged frames (a maximum over time of a datacenter total, a percentile
# over VMs) or set by the partitioned run (its run id, the whole scenario's hash, its wall time).
PARTITION_RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    **{n: ("sum", ()) for n in ("hosts", "vms", "vms_placed", "vms_rejected", "failover_vms", "trace_samples_clipped",
                               "trace_warnings", "drain_vms_stuck", "drain_hosts_not_emptied",
                               "failover_waiting_at_end")},
    # a datacenter total's mean over the intervals: the partitions' totals add up in every interval
    **{n: ("sum", ()) for n in ("hosts_active_mean", "power_w_mean", "exits_per_s_<reason>", "tlb_flushes_per_s",
                               "net_pps_served_mean_<path>")},
    "duration_s": ("first", ()),
    "host_cpu_util_mean": ("mean_weighted", ("hosts_active_mean",)),  # a mean over powered-on host-intervals
    **{n: ("recompute", ()) for n in ("run_id", "scenario_sha256", "wall_s", "hosts_active_max", "power_w_max",
                                     "vms_live_max", "vms_waiting_for_restart_max")},
}
PARTITION_RULE_TEXT = {
    "first": "the same in every partition (checked)",
    "recompute": "recomputed from the merged frames (a maximum over time of a datacenter total, a percentile "
                 "over VMs), or set by the partitioned run (its run id and wall time, the whole scenario's hash)",
}


def partition_rule(column: str) -> tuple[str, tuple[str, ...]]:
    """(rule, of) by which `column` combines across independent partitions."""
    m = lookup(column)
    return PARTITION_RULES.get(m.name, (m.combine, m.of))


def combine_partitions(column: str, parts: Sequence[Mapping[str, object]]):
    """The whole run's value of `column` from its independent partitions' summaries, in partition order. A
    partition without the column (a family's parameter it lacks, a feature it does not use) adds nothing.

    Raises ValueError for a column the parts' summaries cannot give (recompute, difference) or, for a `first`
    column, parts that disagree."""
    rule, of = partition_rule(column)
    m = lookup(column)
    if rule in ("recompute", "difference"):
        raise ValueError(f"{column}: {PARTITION_RULE_TEXT.get(rule, COMBINE_RULES[rule])}")
    value = m.match(column) if m.param else None
    own = lambda o: o.replace(f"<{m.param}>", value) if value else o  # noqa: E731
    if rule == "ratio":
        num, den = (combine_partitions(own(o), parts) for o in of)
        return num / den * (100 if m.unit == "%" else 1) if den > 0 else 0.0
    if rule == "product":
        return math.prod(combine_partitions(own(o), parts) for o in of)
    have = [p for p in parts if column in p]
    vals = [p[column] for p in have]
    if rule == "mean_weighted":
        w = [math.prod(p[o] for o in of) for p in have]
        return sum(wi * v for wi, v in zip(w, vals)) / sum(w) if sum(w) > 0 else 0.0
    if rule == "first":
        if any(v != vals[0] for v in vals[1:]):
            raise ValueError(f"{column}: the partitions disagree (got {vals}, expected one value)")
        return vals[0]
    if rule == "sum":
        return sum(vals[1:], vals[0]) if vals else 0
    return {"max": max, "min": min}[rule](vals)


def _combine_text(m: Metric) -> str:
    sep = {"ratio": " / ", "product": " x "}.get(m.combine, ", ")
    return f"`{m.combine}`" + (f" ({sep.join(m.of)})" if m.of else "")


def metrics_markdown() -> str:
    """docs/metrics.md: every summary column with its unit, feature, combine rule and definition."""
    rows = "\n".join(f"| `{m.name}` | {m.unit} | {m.feature} | {_combine_text(m)} | {m.definition} |"
                     for m in SUMMARY_METRICS)
    rules = "\n".join(f"- `{k}`: {v}." for k, v in COMBINE_RULES.items())
    by_rule: dict = {}
    for n, rule in PARTITION_RULES.items():
        by_rule.setdefault(rule, []).append(f"`{n}`")
    partition_rows = "\n".join(
        f"- `{r}`" + (f" ({', '.join(of)})" if of else "") + (f", {PARTITION_RULE_TEXT[r]}" if r in
                                                             PARTITION_RULE_TEXT else "") + ": " + ", ".join(ns) + "."
        for (r, of), ns in by_rule.items()) + (
        "\n- `availability_p50`, `availability_p50_<group>`, `queue_wait_s_p50`, `queue_wait_s_p95` (time rule "
        "`recompute`): recomputed from the merged frames.")
    return f"""# Summary metrics

<!-- generated by scripts/gen_metrics_doc.py from consolidate/results/metrics.py: edit those, not this -->

The `summary` frame has one row per run; its columns, in this order, are the registry in
`consolidate/results/metrics.py`. A column appears when its feature is on (`always`, `cloudsim_compat`,
`consolidation`, `maintenance`, `failover` VMs, the `overhead` model). A name with `<param>` is a family: one
column per value (I/O path, exit reason, overhead component, impact column). Per-interval means are over the
run's accounting intervals; MIPS-h is MIPS held for an hour.

| column | unit | feature | combine | definition |
|---|---|---|---|---|
{rows}

## Combining parts of a run

`combine` says how the summaries of consecutive time slices of one run (each summarised as a run of its own)
give the whole run's value:

{rules}

## Combining partitions

The partitions of a partitioned run ([partitions.md](partitions.md): disjoint hosts and VMs over the same
time) combine as above, except:

{partition_rows}

Sweep headline metrics (the sweep table's and plots' columns): {", ".join(f"`{n}`" for n in HEADLINE_METRICS)}.

Drain impact (`drain_impact_<column>`) is reported for: {", ".join(f"`{n}`" for n in IMPACT_METRICS)}.
"""


def readme_summary_bullet() -> str:
    """The README's `summary` bullet (in "Result columns"): the columns by feature, in summary order."""
    parts = []
    for f in FEATURES:
        cols = ", ".join(f"`{m.name}`" for m in SUMMARY_METRICS if m.feature == f and m.combine != "difference")
        label = FEATURE_LABELS[f]
        parts.append(f"{cols}." if f == "always" else f"{label[0].upper()}{label[1:]}: {cols}.")
        if f == "maintenance":
            parts.append("A drain also gives `drain_impact_<column>` (with minus without the drains, same seed; "
                         "`maintenance_baseline: false` skips that second run) for "
                         + ", ".join(f"`{n}`" for n in IMPACT_METRICS) + ".")
    text = ("- `summary` (one row; each column's unit, definition and how parts of a run combine: "
            "[docs/metrics.md](docs/metrics.md)): " + " ".join(parts))
    return textwrap.fill(text, width=116, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False)
