"""Event-by-event replay of one VM-interval: every guest event, I/O batch, interrupt, TLB miss and world
switch is stepped one at a time on a cycle clock, with the TLB as state (an exit on an untagged TLB
invalidates it; the next guest work refills it). It shares only the core model's step lists with the rate
model (costmodel.interval), so the two agreeing is a check on the closed forms, not a tautology."""
from __future__ import annotations

from dataclasses import dataclass, field

from consolidate.costmodel.config import Resolved
from consolidate.costmodel.tables import EVENT_OF_COLUMN
from consolidate.hardware import catalog as cat
from consolidate.hardware import coremodel as cm
from consolidate.hardware.assignment import IO_CLASSES


NET = next(c for c in IO_CLASSES if c.name == "net")  # the event replay steps network packets


@dataclass
class Replay:
    """Cycles spent (guest side and host backend) and exits taken, by reason."""

    guest_cycles: float = 0.0
    backend_cycles: float = 0.0
    exits: dict[str, int] = field(default_factory=dict)


class _Stepper:
    def __init__(self, r: Resolved):
        self.r = r
        self.eff = cm.effective(r.cpu, r.hypervisor, r.config)
        self.flushing = cm.flushes_on_transition(self.eff)
        self.refill = cm.tlb_refill_cycles(r.cpu, self.eff, r.config) if self.flushing else 0.0
        self.tlb_valid = True
        self.out = Replay()

    def guest_work(self, cycles: float) -> None:
        if not self.tlb_valid:
            self.out.guest_cycles += self.refill
            self.tlb_valid = True
        self.out.guest_cycles += cycles

    def exit(self, step: cm.Step) -> None:
        c = cm.step_cycles(step, self.r.cpu, self.r.hypervisor, self.r.config, self.eff)
        if self.flushing:
            c -= self.refill  # paid by the guest work that follows
            self.tlb_valid = False
        self.out.guest_cycles += c
        self.out.exits[step.reason] = self.out.exits.get(step.reason, 0) + 1

    def run(self, steps: list[cm.Step]) -> None:
        for s in steps:
            if s.kind == "exit" and s.times != 1:
                # an exit taken `times` times per event on average, each after guest work: the expected cost
                self.guest_work(0.0)
                c = cm.step_cycles(s, self.r.cpu, self.r.hypervisor, self.r.config, self.eff)
                self.out.guest_cycles += s.times * c
                self.out.exits[s.reason] = self.out.exits.get(s.reason, 0) + s.times
            elif s.kind == "exit":
                self.exit(s)
            else:
                # work between exits ends a run of back-to-back transitions: whatever runs next pays the
                # refill, as the closed form (coremodel.steps_cost) and the micro-benchmark stepper count it
                self.guest_work(s.cycles)
        self.guest_work(0.0)  # the guest resumes after the event


def replay(r: Resolved, event_counts: dict[str, int], tlb_misses: int = 0, packets: int = 0,
           world_switches: int = 0) -> Replay:
    """Step one VM-interval's events one by one. `event_counts` by trace column (e.g. 'ctx_switches_per_s':
    count in the interval); `packets` network packets on the VM's net path."""
    st = _Stepper(r)
    if st.eff.mode == "native":
        return st.out
    cpu, hv, cfg, eff = r.cpu, r.hypervisor, r.config, st.eff
    # interleave the events round-robin, as a guest would mix them, rather than in blocks
    queues = {col: n for col, n in event_counts.items() if n > 0 and col in EVENT_OF_COLUMN}
    plans = {col: cm.event_steps(EVENT_OF_COLUMN[col], cpu, hv, cfg, eff) for col in queues}
    while queues:
        for col in list(queues):
            st.run(plans[col])
            queues[col] -= 1
            if queues[col] == 0:
                del queues[col]
    walk = cm.extra_walk_cycles(cpu, eff, cfg)
    for _ in range(tlb_misses):
        st.guest_work(walk)
    if packets:
        path = cat.io_paths()[r.path(NET.name)]
        kio = cm.io_scale(cpu)
        native_driver = cat.io_paths()[NET.native_path].guest_cycles_per_packet * kio
        irq = cm.event_steps("device_irq", cpu, hv, cfg, eff) if eff.mode == "hw" else []
        kicks = [cm.Step("exit", reason=reason, user_space=path.user_space, emulate=path.user_space, label=reason)
                 for reason, n in path.exits_per_batch.items() for _ in range(int(round(n)))] if eff.mode == "hw" else []
        batch = int(round(path.batch))
        irq_every = int(round(1 / path.interrupts_per_packet)) if path.interrupts_per_packet else 0
        for p in range(packets):
            if kicks and p % batch == 0:
                st.run(kicks)
            st.guest_work(path.guest_cycles_per_packet * kio - native_driver)  # driver work beyond native
            st.out.backend_cycles += path.backend_cycles_per_packet * kio
            if irq and irq_every and (p + 1) % irq_every == 0:
                st.run(irq)
    ws = cm.world_switch_cycles(cpu, hv, cfg)
    for _ in range(world_switches):
        st.guest_work(ws)
    return st.out
