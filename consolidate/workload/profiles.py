"""Workload profiles (data/profiles.yaml): fill the guest-event and I/O columns a trace lacks from cpu_util.

Rates are computed per interval for all VMs at once, so nothing per VM is stored beyond a profile index.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import yaml

# the trace columns a profile fills, in a fixed order shared with the cost model
EVENT_COLUMNS = ("ctx_switches_per_s", "page_faults_per_s", "pte_writes_per_s", "syscalls_per_s", "timer_irqs_per_s",
                 "ipis_per_s", "halts_per_s", "cpuid_per_s", "msr_accesses_per_s", "tlb_misses_per_s")
IO_COLUMNS = ("net_rx_pps", "net_tx_pps", "disk_iops")


@dataclass(frozen=True)
class ProfileTable:
    """All profiles as arrays: coef[p, e, 0..2] = base, per_util, per_busy_idle; io[p, j] = per-vCPU rate at 100 %."""

    names: tuple[str, ...]
    coef: np.ndarray  # (profiles, events, 3)
    io: np.ndarray  # (profiles, io columns)

    def index(self, name: str) -> int:
        return self.names.index(name)


@lru_cache(maxsize=1)
def _profiles() -> dict:
    return yaml.safe_load((resources.files("consolidate.workload.data") / "profiles.yaml").read_text())["profiles"]


@lru_cache(maxsize=1)
def profile_table() -> ProfileTable:
    """The profiles shipped with the package."""
    data = _profiles()
    names = tuple(data)
    coef = np.array([[[p["events"][c]["base"], p["events"][c]["per_util"], p["events"][c]["per_busy_idle"]]
                      for c in EVENT_COLUMNS] for p in data.values()], dtype=np.float64)
    io = np.array([[p["io"][c] for c in IO_COLUMNS] for p in data.values()], dtype=np.float64)
    return ProfileTable(names=names, coef=coef, io=io)


MMU_FIELDS = ("working_set_mib", "address_spaces", "shared_share", "bulk_pte_share", "invlpg_share", "guest_page",
              "working_set_pages")


@lru_cache(maxsize=None)
def profile_mmu(name: str) -> tuple[tuple[str, object], ...]:
    """A profile's MMU character (its `mmu` block, MMU_FIELDS) as (field, value) pairs: working_set_mib (MiB
    touched in steady state), address_spaces (processes taking turns on a vCPU), shared_share (of the working
    set mapped by every address space), bulk_pte_share and
    invlpg_share (of its PTE writes), guest_page ('4k' or '2m'), working_set_pages (pages it re-touches after a
    TLB flush before the next transition; coremodel.REFILL_PAGES when the profile states none)."""
    mmu = _profiles()[name].get("mmu") or {}
    return tuple((k, mmu[k]) for k in MMU_FIELDS if k in mmu)


def event_rates(profile_idx: np.ndarray, util: np.ndarray) -> np.ndarray:
    """Guest event rates per second per vCPU, shape (VMs, len(EVENT_COLUMNS)), from each VM's profile and util."""
    t = profile_table()
    c = t.coef[profile_idx]  # (V, E, 3)
    u = np.asarray(util, dtype=np.float64)[:, None]
    return c[:, :, 0] + c[:, :, 1] * u + c[:, :, 2] * u * (1.0 - u)


def io_rates(profile_idx: np.ndarray, util: np.ndarray, vcpus: np.ndarray) -> np.ndarray:
    """VM-total I/O rates (net_rx_pps, net_tx_pps, disk_iops), shape (VMs, 3)."""
    t = profile_table()
    return t.io[profile_idx] * (np.asarray(util, np.float64) * np.asarray(vcpus, np.float64))[:, None]
