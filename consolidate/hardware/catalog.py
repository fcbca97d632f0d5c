"""Load the hardware catalog shipped inside the package (`consolidate/hardware/data/*.yaml`)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from consolidate.scenario.model import HostType


@dataclass(frozen=True)
class CatalogHost:
    """A catalog host type, with the provenance of each group of its figures."""

    host_type: HostType
    cpu: str
    sources: dict[str, dict[str, str]]  # "field, field" -> {source, confidence}


@lru_cache(maxsize=1)
def host_catalog() -> dict[str, CatalogHost]:
    """Host types known to the package, by name."""
    text = (resources.files("consolidate.hardware.data") / "hosts.yaml").read_text()
    out: dict[str, CatalogHost] = {}
    for entry in yaml.safe_load(text):
        entry = dict(entry)
        cpu, sources = entry.pop("cpu"), entry.pop("sources")
        summary = "; ".join(f"{k}: {v['source']} ({v['confidence']})" for k, v in sources.items())
        ht = HostType(**entry, source=summary)
        out[ht.name] = CatalogHost(host_type=ht, cpu=cpu, sources=sources)
    return out
