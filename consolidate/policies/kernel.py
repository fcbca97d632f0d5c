"""Steps 2 and 3 of a consolidation round (policies.consolidation.plan_round), compiled, for the round's common
case: a static-threshold detector, the round's own view of power (no stale utilisation), no directly assigned
devices. They decide exactly what the Python steps decide, float operation for float operation (no fastmath:
no reassociation, no fused multiply-add), so the moves are the same bit for bit (tests/test_consolidation_search.py).

Why compiled: at 100,000 VMs a round makes some 3,000 host searches and 1,600 moves, each a few dozen numpy
calls of a few microseconds apiece; in a compiled loop a search costs about what its arithmetic does.

Units: loads, demand, room and thresholds in MIPS; memory in MB; power in W. Hosts are indices 0..H-1.

The host search is PABFD (the least power rise, ties within 1e-6 W to the lowest index). Its fast form takes the
lowest-indexed host that fits when that host's rise is provably within 1e-6 W of the least any host could have
(always so with linear power curves); otherwise the full pass over the candidates decides. Finding the
lowest-indexed host that fits walks blocks of BLOCK hosts and superblocks of SUPER blocks in index order,
skipping those whose exact bounds (least load of a host that is on, whether a host is off, best memory, CPU and
per-core room, highest threshold, over the hosts not excluded) say no host in them can take the VM. The bounds are
recomputed for a host's block and superblock whenever the host's load or exclusion changes.
"""
from __future__ import annotations

import heapq

import numpy as np

BLOCK = 32  # hosts per block
SUPER = 32  # blocks per superblock
# below this many hosts the callers keep their Python steps: numba's start-up in a process (importing it, loading
# the cached machine code: about 1.5 s of CPU and 150 MB) costs more than it saves there
MIN_HOSTS = 1000

_KERNELS: list[str] = []  # the module's compiled functions, by name


def _kernel(fn):
    """Mark fn for compiling. numba is imported and the functions compiled (or loaded from its cache beside this
    file) on the first call of an entry point, so a process that never needs them does not pay for it."""
    _KERNELS.append(fn.__name__)
    return fn


def _compiled():
    g = globals()
    if _KERNELS:
        from numba import njit  # only here: see _kernel
        for name in _KERNELS:
            g[name] = njit(cache=True)(g[name])  # the others find each other through these globals
        _KERNELS.clear()
    return g

# columns of the bounds arrays (blocks or superblocks, 6)
_MIN_ON, _HAS_OFF, _MEM, _CPU, _THR, _CORE = range(6)

OVERLOAD, UNDERLOAD = 0, 1  # reasons of the moves returned


@_kernel
def _group_by_host(where: np.ndarray, n_hosts: int) -> tuple[np.ndarray, np.ndarray]:
    """group_by_host."""
    start = np.zeros(n_hosts + 1, np.int64)
    for h in where:
        if h >= 0:
            start[h + 1] += 1
    for h in range(n_hosts):
        start[h + 1] += start[h]
    fill = start[:-1].copy()
    order = np.empty(start[n_hosts], np.int64)
    for v in range(len(where)):
        h = where[v]
        if h >= 0:
            order[fill[h]] = v
            fill[h] += 1
    return order, start


@_kernel
def _bound_block(b, blk, load, on, room_mem, room_cpu, room_core, thr_cap, excluded):
    """Exact bounds of block b over its hosts that are not excluded."""
    H = len(load)
    min_on, has_off, mem, cpu, thr, core = np.inf, 0.0, -np.inf, -np.inf, -np.inf, -np.inf
    for h in range(b * BLOCK, min((b + 1) * BLOCK, H)):
        if excluded[h]:
            continue
        if on[h]:
            min_on = min(min_on, load[h])
        else:
            has_off = 1.0
        mem = max(mem, room_mem[h])
        cpu = max(cpu, room_cpu[h])
        thr = max(thr, thr_cap[h])
        core = max(core, room_core[h])
    blk[b, _MIN_ON], blk[b, _HAS_OFF], blk[b, _MEM] = min_on, has_off, mem
    blk[b, _CPU], blk[b, _THR], blk[b, _CORE] = cpu, thr, core


@_kernel
def _bound_super(sb, sup, blk):
    """Bounds of superblock sb from its blocks'."""
    n = len(blk)
    sup[sb, _MIN_ON], sup[sb, _HAS_OFF] = np.inf, 0.0
    for c in range(_MEM, _CORE + 1):
        sup[sb, c] = -np.inf
    for b in range(sb * SUPER, min((sb + 1) * SUPER, n)):
        sup[sb, _MIN_ON] = min(sup[sb, _MIN_ON], blk[b, _MIN_ON])
        sup[sb, _HAS_OFF] = max(sup[sb, _HAS_OFF], blk[b, _HAS_OFF])
        for c in range(_MEM, _CORE + 1):
            sup[sb, c] = max(sup[sb, c], blk[b, c])


@_kernel
def _bound_all(blk, sup, load, on, room_mem, room_cpu, room_core, thr_cap, excluded):
    for b in range(len(blk)):
        _bound_block(b, blk, load, on, room_mem, room_cpu, room_core, thr_cap, excluded)
    for sb in range(len(sup)):
        _bound_super(sb, sup, blk)


@_kernel
def _bound_host(h, blk, sup, load, on, room_mem, room_cpu, room_core, thr_cap, excluded):
    b = h // BLOCK
    _bound_block(b, blk, load, on, room_mem, room_cpu, room_core, thr_cap, excluded)
    _bound_super(b // SUPER, sup, blk)


@_kernel
def _may_fit(row, d, need, per_core, empty_allowed):
    """Whether a (super)block with bounds `row` may hold a host that takes the VM."""
    return ((row[_MIN_ON] + d <= row[_THR] or (empty_allowed and row[_HAS_OFF] > 0.0)) and row[_MEM] >= need
            and row[_CPU] >= d and row[_CORE] >= per_core)


@_kernel
def _fits(h, d, need, per_core, empty_allowed, load, on, room_mem, room_cpu, room_core, thr_cap, excluded):
    """consolidation._find_host's test of one host: room for the VM's memory, CPU and per-core demand, not
    excluded, and (on) not past the threshold with it, or (off) switching hosts on allowed."""
    if excluded[h] or not (room_mem[h] >= need and room_cpu[h] >= d and room_core[h] >= per_core):
        return False
    if on[h]:
        return load[h] + d <= thr_cap[h]
    return empty_allowed


@_kernel
def _first_fit(d, need, per_core, empty_allowed, blk, sup, load, on, room_mem, room_cpu, room_core, thr_cap,
               excluded):
    """The lowest-indexed host that fits, -1 if none."""
    H, nb = len(load), len(blk)
    for sb in range(len(sup)):
        if not _may_fit(sup[sb], d, need, per_core, empty_allowed):
            continue
        for b in range(sb * SUPER, min((sb + 1) * SUPER, nb)):
            if not _may_fit(blk[b], d, need, per_core, empty_allowed):
                continue
            for h in range(b * BLOCK, min((b + 1) * BLOCK, H)):
                if _fits(h, d, need, per_core, empty_allowed, load, on, room_mem, room_cpu, room_core, thr_cap,
                         excluded):
                    return h
    return -1


@_kernel
def _rise(h, d, load, cap, curve_flat, power):
    """The host's power rise (W) with d more MIPS, in the full search's float operations."""
    pos = min((load[h] + d) / cap[h], 1.0) * 10.0
    lo = min(int(pos), 9)
    p0 = curve_flat[h * 11 + lo]
    return p0 + (pos - lo) * (curve_flat[h * 11 + lo + 1] - p0) - power[h]


@_kernel
def _full_search(d, need, per_core, empty_allowed, host_type, n_types, rises, load, on, room_mem, room_cpu,
                 room_core, thr_cap, excluded, cap, curve_flat, power):
    """consolidation._find_host's full pass: every host that is on and fits, and the lowest-indexed host of
    each type that is off and fits; the least rise, ties within 1e-6 W to the lowest index."""
    H = len(load)
    found = np.zeros(n_types, np.bool_)
    best = np.inf
    n = 0
    for h in range(H):
        if not _fits(h, d, need, per_core, empty_allowed, load, on, room_mem, room_cpu, room_core, thr_cap,
                     excluded):
            rises[h] = np.nan
            continue
        if not on[h]:
            if found[host_type[h]]:
                rises[h] = np.nan
                continue
            found[host_type[h]] = True
        r = _rise(h, d, load, cap, curve_flat, power)
        rises[h] = r
        best = min(best, r)
        n += 1
    if n == 0:
        return -1
    for h in range(H):
        if rises[h] <= best + 1e-6:  # NaN (not a candidate) never is
            return h
    return -1


@_kernel
def _shift(v, host, sign, demand, need, load, on, room_mem, room_cpu, power, cap, curve_flat, touched, n_touched,
           blk, sup, room_core, thr_cap, excluded, bound=True):
    """consolidation._Work.move's bookkeeping for one end: VM v leaves (sign -1) or joins (+1) the host; its
    block's bounds follow unless not `bound`. Returns the new count of touched hosts."""
    d, r = demand[v], need[v]
    load[host] += sign * d
    room_mem[host] -= sign * r
    room_cpu[host] -= sign * d
    pos = min(max(load[host] / cap[host], 0.0), 1.0) * 10.0  # _power_one
    lo = min(int(pos), 9)
    c = host * 11
    power[host] = curve_flat[c + lo] + (pos - lo) * (curve_flat[c + lo + 1] - curve_flat[c + lo])
    on[host] = load[host] > 0
    touched[n_touched] = host
    if bound:
        _bound_host(host, blk, sup, load, on, room_mem, room_cpu, room_core, thr_cap, excluded)
    return n_touched + 1


@_kernel
def _argmin(key, cand, n):
    """np.argmin(key[cand[:n]]): the first least, or the first NaN."""
    best = 0
    for i in range(n):
        k, b = key[cand[i]], key[cand[best]]
        if np.isnan(k):
            return i
        if k < b:
            best = i
    return best


@_kernel
def _round_steps(select, key, thr, sel_vm, sel_src, vm_host, where, busy, pinned_vm, order, start, demand, need,
                vcpus, load, on, room_mem, room_cpu, room_core, power, cap, thr_cap, curve_flat, host_type, n_types,
                over, blocked, host_pinned, floor_per_mips, floor_overshoot_mips, floor_eps_w, underload):
    """The steps of plan_round from the state at the start of the round (select) or the state step 1 left.

    select: do step 1 here, taking VMs off each overloaded host by the least `key` (per VM; MMT: memory, MU:
    demand) until its utilisation is no more than `thr`; else sel_vm, sel_src are the VMs step 1 selected, biggest
    first (ties in the order selected), and their hosts. order, start: each host's VMs at the start of the round
    (group_by_host). where, load, on, room_*, power: the round's working state, updated in place. over, blocked,
    host_pinned (H,) bool: overloaded hosts, hosts taking no VM, hosts with VMs in migration. floor_*: the least
    rise per MIPS any host can have, and its margins (MIPS, W).

    Returns (vm, source, destination, reason) arrays of the moves in the order decided."""
    H = len(load)
    nb = -(-H // BLOCK)
    blk = np.empty((nb, 6))
    sup = np.empty((-(-nb // SUPER), 6))
    rises = np.empty(H)
    if select:
        sel_vm, sel_src = _select(key, thr, vm_host, where, busy, pinned_vm, order, start, demand, need, load, on,
                                  room_mem, room_cpu, power, cap, curve_flat, over)
    n_sel = len(sel_vm)
    cap_moves = n_sel + len(order) + 1  # each VM moves at most once in a step
    mv_vm = np.empty(cap_moves, np.int64)
    mv_src = np.empty(cap_moves, np.int64)
    mv_dst = np.empty(cap_moves, np.int64)
    mv_why = np.empty(cap_moves, np.int64)
    n_mv = 0
    most = 0  # VMs on the fullest host
    for h in range(H):
        most = max(most, start[h + 1] - start[h])
    # hosts whose load changed since the heap last saw them: step 2's moves, or one host's emptying and its undoing
    touched = np.empty(n_sel + 4 * most + 4, np.int64)
    n_touched = 0
    counts = np.zeros(2, np.int64)  # the fast search's hits and misses

    # 2. the selected VMs, biggest first, away from overloaded and unavailable hosts
    away = over | blocked
    _bound_all(blk, sup, load, on, room_mem, room_cpu, room_core, thr_cap, away)
    unplaced = np.empty(n_sel, np.int64)
    n_unplaced = 0
    for i in range(n_sel):
        v = sel_vm[i]
        dest = _pabfd(v, away, True, counts, demand, need, vcpus, blk, sup, load, on, room_mem, room_cpu,
                      room_core, thr_cap, cap, curve_flat, power, host_type, n_types, rises, floor_per_mips,
                      floor_overshoot_mips, floor_eps_w)
        if dest >= 0:
            n_touched = _shift(v, dest, 1.0, demand, need, load, on, room_mem, room_cpu, power, cap, curve_flat,
                               touched, n_touched, blk, sup, room_core, thr_cap, away)
            where[v] = dest
            mv_vm[n_mv], mv_src[n_mv], mv_dst[n_mv], mv_why[n_mv] = v, sel_src[i], dest, OVERLOAD
            n_mv += 1
        else:
            unplaced[n_unplaced] = i
            n_unplaced += 1
    for k in range(n_unplaced):  # stays where it was
        i = unplaced[k]
        n_touched = _shift(sel_vm[i], sel_src[i], 1.0, demand, need, load, on, room_mem, room_cpu, power, cap,
                           curve_flat, touched, n_touched, blk, sup, room_core, thr_cap, away)
        where[sel_vm[i]] = sel_src[i]
    if not underload:
        return mv_vm[:n_mv], mv_src[:n_mv], mv_dst[:n_mv], mv_why[:n_mv]

    # 3. empty the least-utilised hosts, all VMs or none, never onto a switched-off host
    off = load <= 0
    excluded_under = over | off | host_pinned | blocked
    for k in range(n_mv):
        excluded_under[mv_dst[k]] = True
    excluded = over | off | blocked  # every host seen off is in it: searches never switch one on
    _bound_all(blk, sup, load, on, room_mem, room_cpu, room_core, thr_cap, excluded)
    # the least-utilised host by a heap of (utilisation, host): a host is pushed again when its load changes, and
    # an entry whose host is excluded, empty or no longer at that utilisation is dropped when it surfaces
    heap = [(0.0, 0)]
    heap.pop()
    for x in range(H):
        if not excluded_under[x] and load[x] > 0:
            heap.append((load[x] / cap[x], x))
    heapq.heapify(heap)
    n_touched = 0  # the heap holds every host at its utilisation now
    vms = np.empty(most, np.int64)
    tentative = np.empty(most, np.int64)  # destinations, in the order of vms
    while True:
        for k in range(n_touched):
            x = touched[k]
            if not excluded_under[x] and load[x] > 0:
                heapq.heappush(heap, (load[x] / cap[x], x))
        n_touched = 0
        h = -1
        while len(heap):
            u, x = heapq.heappop(heap)
            if not excluded_under[x] and load[x] > 0 and u == load[x] / cap[x]:
                h = x
                break
        if h < 0:
            break
        excluded_under[h] = True
        excluded[h] = True
        _bound_host(h, blk, sup, load, on, room_mem, room_cpu, room_core, thr_cap, excluded)
        n = 0
        stuck = False
        for j in range(start[h], start[h + 1]):
            v = order[j]
            if where[v] == h and not busy[v]:
                stuck = stuck or pinned_vm[v]
                # biggest first, ties in index order (a stable insertion)
                i = n
                while i > 0 and -demand[vms[i - 1]] > -demand[v]:
                    vms[i] = vms[i - 1]
                    i -= 1
                vms[i] = v
                n += 1
        if n == 0 or stuck:
            continue  # a host holding a pinned VM cannot be emptied
        placed = 0
        for i in range(n):
            v = vms[i]
            dest = _pabfd(v, excluded, False, counts, demand, need, vcpus, blk, sup, load, on, room_mem, room_cpu,
                          room_core, thr_cap, cap, curve_flat, power, host_type, n_types, rises, floor_per_mips,
                          floor_overshoot_mips, floor_eps_w)
            if dest < 0:
                break
            n_touched = _shift(v, h, -1.0, demand, need, load, on, room_mem, room_cpu, power, cap, curve_flat,
                               touched, n_touched, blk, sup, room_core, thr_cap, excluded)
            n_touched = _shift(v, dest, 1.0, demand, need, load, on, room_mem, room_cpu, power, cap, curve_flat,
                               touched, n_touched, blk, sup, room_core, thr_cap, excluded)
            where[v] = dest
            tentative[i] = dest
            placed += 1
        if placed < n:
            for i in range(placed - 1, -1, -1):
                v = vms[i]
                n_touched = _shift(v, tentative[i], -1.0, demand, need, load, on, room_mem, room_cpu, power, cap,
                                   curve_flat, touched, n_touched, blk, sup, room_core, thr_cap, excluded)
                n_touched = _shift(v, h, 1.0, demand, need, load, on, room_mem, room_cpu, power, cap, curve_flat,
                                   touched, n_touched, blk, sup, room_core, thr_cap, excluded)
                where[v] = h
            continue
        for i in range(n):
            mv_vm[n_mv], mv_src[n_mv], mv_dst[n_mv], mv_why[n_mv] = vms[i], vm_host[vms[i]], tentative[i], UNDERLOAD
            n_mv += 1
            excluded_under[tentative[i]] = True
    return mv_vm[:n_mv], mv_src[:n_mv], mv_dst[:n_mv], mv_why[:n_mv]


@_kernel
def _select(key, thr, vm_host, where, busy, pinned_vm, order, start, demand, need, load, on, room_mem, room_cpu,
            power, cap, curve_flat, over):
    """Step 1: from each overloaded host (ascending), its VMs that may move, the least key first, until the host
    is no longer overloaded (utilisation > thr). Takes them off (where -1). Returns (VMs, their hosts), biggest
    demand first, ties in the order selected."""
    sel = np.empty(len(order), np.int64)
    src = np.empty(len(order), np.int64)
    n = 0
    cand = np.empty(len(order), np.int64)
    scratch = np.empty(1, np.int64)
    blk = np.empty((0, 6))  # no bounds yet: the search steps compute them
    for h in range(len(over)):
        if not over[h]:
            continue
        k = 0
        for j in range(start[h], start[h + 1]):
            v = order[j]
            if where[v] == h and vm_host[v] == h and not busy[v] and not pinned_vm[v]:
                cand[k] = v
                k += 1
        while k:
            i = _argmin(key, cand, k)
            v = cand[i]
            _shift(v, h, -1.0, demand, need, load, on, room_mem, room_cpu, power, cap, curve_flat, scratch, 0,
                   blk, blk, room_mem, cap, over, False)
            where[v] = -1
            sel[n], src[n] = v, h
            n += 1
            if not (load[h] / cap[h] > thr):
                break
            for j in range(i, k - 1):  # the others stay candidates, in the same order
                cand[j] = cand[j + 1]
            k -= 1
    by_size = np.argsort(-demand[sel[:n]], kind="mergesort")  # stable
    return sel[:n][by_size], src[:n][by_size]


@_kernel
def _pabfd(v, excluded, empty_allowed, counts, demand, need, vcpus, blk, sup, load, on, room_mem, room_cpu,
           room_core, thr_cap, cap, curve_flat, power, host_type, n_types, rises, floor_per_mips,
           floor_overshoot_mips, floor_eps_w):
    """consolidation._find_host for VM v (not `alone`): the fast form, else the full search; -1 if no host fits.
    counts: the fast form's hits and misses so far, updated."""
    dest = _find(v, excluded, empty_allowed, counts, demand, need, vcpus, blk, sup, load, on, room_mem, room_cpu,
                 room_core, thr_cap, cap, curve_flat, power, floor_per_mips, floor_overshoot_mips, floor_eps_w)
    if dest >= 0:
        counts[0] += 1
    elif dest == -2:
        counts[1] += 1
    if dest < -1:
        dest = _full_search(demand[v], need[v], demand[v] / vcpus[v], empty_allowed, host_type, n_types, rises,
                            load, on, room_mem, room_cpu, room_core, thr_cap, excluded, cap, curve_flat, power)
    return dest


@_kernel
def _find(v, excluded, empty_allowed, counts, demand, need, vcpus, blk, sup, load, on, room_mem, room_cpu,
          room_core, thr_cap, cap, curve_flat, power, floor_per_mips, floor_overshoot_mips, floor_eps_w):
    """The fast form of the search for VM v: the lowest-indexed host that fits when its rise is provably the
    least (>= 0), -1 when no host fits, -2 when only the full search can tell (its rise may not be the least),
    -3 when the fast form is not tried (negative demand, or it has missed too often to be worth it)."""
    d = demand[v]
    hits, misses = counts[0], counts[1]
    if d < 0 or not (misses <= 16 or hits >= misses):
        return -3
    h = _first_fit(d, need[v], d / vcpus[v], empty_allowed, blk, sup, load, on, room_mem, room_cpu, room_core,
                   thr_cap, excluded)
    if h < 0:
        return -1
    k = floor_per_mips  # no host rises by less than this (per MIPS of demand), less the margins
    floor = (k * max(d - floor_overshoot_mips, 0.0) if k >= 0 else k * d * (1 + 1e-9)) - floor_eps_w
    if _rise(h, d, load, cap, curve_flat, power) <= floor + 1e-6:
        return h
    return -2


@_kernel
def _used_bounds(b, blk, cpu_used, mem_used, cpu_limit, mem_limit):
    """Block b's least CPU and memory used and largest limits (first_fit_all)."""
    lo, hi = b * BLOCK, min((b + 1) * BLOCK, len(cpu_used))
    blk[b, 0], blk[b, 1], blk[b, 2], blk[b, 3] = np.inf, np.inf, -np.inf, -np.inf
    for h in range(lo, hi):
        blk[b, 0] = min(blk[b, 0], cpu_used[h])
        blk[b, 1] = min(blk[b, 1], mem_used[h])
        blk[b, 2] = max(blk[b, 2], cpu_limit[h])
        blk[b, 3] = max(blk[b, 3], mem_limit[h])


@_kernel
def _used_super(sb, sup, blk):
    sup[sb, 0], sup[sb, 1], sup[sb, 2], sup[sb, 3] = np.inf, np.inf, -np.inf, -np.inf
    for b in range(sb * SUPER, min((sb + 1) * SUPER, len(blk))):
        sup[sb, 0] = min(sup[sb, 0], blk[b, 0])
        sup[sb, 1] = min(sup[sb, 1], blk[b, 1])
        sup[sb, 2] = max(sup[sb, 2], blk[b, 2])
        sup[sb, 3] = max(sup[sb, 3], blk[b, 3])


@_kernel
def _first_fit_all(order, sizes, per_type, host_type, mem_mb, cpu_used, mem_used, cpu_limit, mem_limit):
    """Initial first-fit placement (policies.placement.place): each VM in `order` to the lowest-indexed host where
    CPU used + its size <= cpu_limit and memory used + its memory <= mem_limit (MIPS, MB; the limits with their
    rounding allowance). sizes (VMs, types): the VM's MIPS per host type when per_type, else column 0.
    cpu_used, mem_used are updated in place. Returns the host per VM (-1: none)."""
    H = len(cpu_used)
    nb = -(-H // BLOCK)
    blk = np.empty((nb, 4))
    sup = np.empty((-(-nb // SUPER), 4))
    for b in range(nb):
        _used_bounds(b, blk, cpu_used, mem_used, cpu_limit, mem_limit)
    for sb in range(len(sup)):
        _used_super(sb, sup, blk)
    out = np.full(len(sizes), -1, np.int64)
    for v in order:
        least = sizes[v, 0]
        if per_type:
            for t in range(1, sizes.shape[1]):
                least = min(least, sizes[v, t])
        m = mem_mb[v]
        found = -1
        for sb in range(len(sup)):
            if not (sup[sb, 0] + least <= sup[sb, 2] and sup[sb, 1] + m <= sup[sb, 3]):
                continue
            for b in range(sb * SUPER, min((sb + 1) * SUPER, nb)):
                if not (blk[b, 0] + least <= blk[b, 2] and blk[b, 1] + m <= blk[b, 3]):
                    continue
                for h in range(b * BLOCK, min((b + 1) * BLOCK, H)):
                    cpu = sizes[v, host_type[h]] if per_type else sizes[v, 0]
                    if cpu_used[h] + cpu <= cpu_limit[h] and mem_used[h] + m <= mem_limit[h]:
                        found = h
                        break
                if found >= 0:
                    break
            if found >= 0:
                break
        if found < 0:
            continue
        out[v] = found
        cpu_used[found] += sizes[v, host_type[found]] if per_type else sizes[v, 0]
        mem_used[found] += m
        _used_bounds(found // BLOCK, blk, cpu_used, mem_used, cpu_limit, mem_limit)
        _used_super(found // BLOCK // SUPER, sup, blk)
    return out


def group_by_host(where: np.ndarray, n_hosts: int) -> tuple[np.ndarray, np.ndarray]:
    """VMs grouped by host, ascending within each: host h's are order[start[h]:start[h + 1]] (where < 0: none).
    A counting sort: the same as a stable argsort of `where` (int64), in O(VMs + hosts)."""
    return _compiled()["_group_by_host"](where, n_hosts)


def round_steps(*args):
    """_round_steps, compiled (its arguments and result there)."""
    return _compiled()["_round_steps"](*args)


def first_fit_all(*args):
    """_first_fit_all, compiled (its arguments and result there)."""
    return _compiled()["_first_fit_all"](*args)
