"""The datacenter network as hardware: a networkx graph of hosts and switches with link capacities, and the
paths between hosts. How concurrent transfers share it is the engine's (engine/flows.py).

Links are full duplex: each direction of an edge is a separate capacity. Every link has a latency (seconds, one
way; `latency_s`, default 0): the default sharing model ignores it, `lv08` weights flows by it (engine/flows.py).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

import networkx as nx

Link = tuple[str, str]


def host_node(h: int) -> str:
    return f"h{h}"


def flat(host_bps: list[float], latency_s: float = 0.0) -> nx.Graph:
    """Every host on one switch; each host's link runs at its NIC rate."""
    g = nx.Graph()
    for h, bps in enumerate(host_bps):
        g.add_edge(host_node(h), "switch", capacity_bps=float(bps), latency_s=float(latency_s))
    return g


def leaf_spine(host_bps: list[float], hosts_per_rack: int, spines: int, uplink_bps: float,
               latency_s: float = 0.0, uplink_latency_s: float = 0.0) -> nx.Graph:
    """Racks of `hosts_per_rack` hosts on a leaf switch each; every leaf linked to every spine."""
    g = nx.Graph()
    n_racks = -(-len(host_bps) // hosts_per_rack)
    for h, bps in enumerate(host_bps):
        g.add_edge(host_node(h), f"leaf{h // hosts_per_rack}", capacity_bps=float(bps), latency_s=float(latency_s))
    for r in range(n_racks):
        for s in range(spines):
            g.add_edge(f"leaf{r}", f"spine{s}", capacity_bps=float(uplink_bps), latency_s=float(uplink_latency_s))
    return g


def fat_tree(host_bps: list[float], k: int, link_bps: float, latency_s: float = 0.0,
             uplink_latency_s: float = 0.0) -> nx.Graph:
    """A k-ary fat tree (k even): k pods of k/2 edge and k/2 aggregation switches, (k/2)^2 cores, k^3/4 host
    ports; hosts fill the ports in order. Raises ValueError if there are more hosts than ports."""
    if k % 2:
        raise ValueError(f"fat-tree k must be even (got {k})")
    half = k // 2
    if len(host_bps) > k ** 3 // 4:
        raise ValueError(f"a fat tree with k={k} has {k ** 3 // 4} host ports (got {len(host_bps)} hosts)")
    g = nx.Graph()
    for h, bps in enumerate(host_bps):
        pod, rest = divmod(h, half * half)
        g.add_edge(host_node(h), f"edge{pod}.{rest // half}", capacity_bps=float(bps), latency_s=float(latency_s))
    for pod in range(k):
        for e in range(half):
            for a in range(half):
                g.add_edge(f"edge{pod}.{e}", f"agg{pod}.{a}", capacity_bps=float(link_bps),
                           latency_s=float(uplink_latency_s))
        for a in range(half):
            for c in range(half):
                g.add_edge(f"agg{pod}.{a}", f"core{a * half + c}", capacity_bps=float(link_bps),
                           latency_s=float(uplink_latency_s))
    return g


def explicit(links: list[tuple], latency_s: float = 0.0) -> nx.Graph:
    """A graph from (node, node, capacity_bps[, latency_s]) tuples; hosts are the nodes named h0, h1, ...; a link
    without its own latency has `latency_s`."""
    g = nx.Graph()
    for a, b, bps, *lat in links:
        g.add_edge(str(a), str(b), capacity_bps=float(bps), latency_s=float(lat[0] if lat else latency_s))
    return g


class Network:
    """Paths (cached) and link capacities of one topology."""

    def __init__(self, graph: nx.Graph):
        self.graph = graph
        self._path = lru_cache(maxsize=None)(self._compute_path)
        self._cap: dict[Link, float] = {}
        lat: dict[Link, float] = {}
        for a, b, c in graph.edges(data="capacity_bps"):
            self._cap[(a, b)] = self._cap[(b, a)] = float(c)
            lat[(a, b)] = lat[(b, a)] = float(graph.edges[a, b].get("latency_s", 0.0))
        self.link_index = {link: i for i, link in enumerate(self._cap)}
        self.capacities = np.array(list(self._cap.values()))
        self.latencies = np.array([lat[link] for link in self._cap])  # seconds, one way, per directed link
        self._ids = lru_cache(maxsize=None)(self._compute_ids)

    def _compute_ids(self, src: int, dst: int) -> np.ndarray:
        return np.array([self.link_index[link] for link in self.path(src, dst)], dtype=np.int64)

    def link_ids(self, src: int, dst: int) -> np.ndarray:
        """Indices into `capacities` of the directed links from host src to host dst."""
        return self._ids(src, dst)

    def _compute_path(self, src: int, dst: int) -> tuple[Link, ...]:
        nodes = nx.shortest_path(self.graph, host_node(src), host_node(dst))
        return tuple(zip(nodes[:-1], nodes[1:]))

    def path(self, src: int, dst: int) -> tuple[Link, ...]:
        """Directed links from host src to host dst (shortest path, deterministic)."""
        return self._path(src, dst)

    def capacity(self, link: Link) -> float:
        return self._cap[link]


def build_topology(net, host_bps: list[float]) -> nx.Graph:
    """The graph of a scenario's `network` block (a NetworkSpec) for hosts with these NIC rates (bits/s)."""
    lat, up = net.link_latency_s, net.uplink_latency_s
    if net.topology == "flat":
        return flat(host_bps, lat)
    if net.topology == "leaf-spine":
        return leaf_spine(host_bps, net.hosts_per_rack, net.spines, net.uplink_bps, lat, up)
    if net.topology == "fat-tree":
        return fat_tree(host_bps, net.k, net.link_bps, lat, up)
    return explicit(net.links, lat)
