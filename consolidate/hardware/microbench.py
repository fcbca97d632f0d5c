"""Predict micro-benchmarks with the core model, in two independent ways that must agree.

- `predict` (rate mode): closed-form sums of step costs, the same arithmetic the datacenter cost model uses
  per interval; every exit that flushes an untagged TLB is charged a full refill.
- `step_through` (event mode): runs N iterations exit by exit on a cycle clock, with the TLB as state: a flush
  invalidates it and the next guest work pays the refill; a deadline timer fires at its absolute time.

Benchmarks come from data/microbench.yaml: kvm-unit-tests x86/vmexit and the Adams & Agesen nanobenchmarks.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from consolidate.hardware import coremodel as cm
from consolidate.hardware.catalog import Cpu, Hypervisor


@lru_cache(maxsize=1)
def _spec() -> dict:
    return yaml.safe_load((resources.files("consolidate.hardware.data") / "microbench.yaml").read_text())


def benchmarks() -> dict[str, dict]:
    """Benchmark definitions by name."""
    return dict(_spec()["benchmarks"])


def constants() -> dict:
    return {k: v for k, v in _spec()["constants"].items() if k != "sources"}


@dataclass(frozen=True)
class Plan:
    """One iteration of a benchmark: `before` steps, an optional wait until `deadline_cycles` after the
    iteration starts, then `after` steps. Native guest work is a `cycles` step labelled 'native'."""

    before: list[cm.Step]
    deadline_cycles: float | None = None
    after: tuple[cm.Step, ...] = ()


def _native(cycles: float) -> cm.Step:
    return cm.Step("cycles", cycles=float(cycles), label="native")


def plan(name: str, cpu: Cpu, hv: Hypervisor | None, cfg: cm.VirtConfig) -> Plan:
    """The steps of one iteration of benchmark `name`."""
    spec = benchmarks()[name]
    k = constants()
    eff = cm.effective(cpu, hv, cfg)
    virt = eff.mode != "native"
    native = spec.get("native_cycles", 0.0)
    if "native_ns" in spec:
        native = spec["native_ns"] * cpu.frequency_ghz
    steps: list[cm.Step] = []
    for ev in spec.get("events", []):
        steps += cm.event_steps(ev, cpu, hv, cfg, eff)
    if virt and eff.mode == "hw":
        steps += [cm.Step("exit", reason=r, label=r) for r in spec.get("exits", [])]
    elif virt and spec.get("exits"):
        # no VT-x exits outside hw mode: a BT monitor emulates in a callout, a PV guest makes a hypercall
        per = ((hv.bt or {}).get("callout_cycles", 0) if eff.mode == "bt" else
               (hv.pv or {}).get("hypercall_cycles", 0)) * cm.software_scale(cpu, hv)
        steps += [cm.Step("cycles", cycles=per, label="callout/hypercall") for _ in spec["exits"]]
    port = spec.get("port")
    if virt and port:
        if eff.mode == "hw":
            user = port == "user"
            emulate = port == "kernel_in" or (port == "user" and hv.pio_in_emulated)
            steps.append(cm.Step("exit", reason="io_instruction", user_space=user, emulate=emulate, label="io_instruction"))
        else:  # a BT monitor emulates an in-kernel-class device itself; the host's device model needs a world switch
            steps += cm.event_steps("io_port_user" if port == "user" else "io_port", cpu, hv, cfg, eff)
    dev = spec.get("device")
    sw = cm.software_scale(cpu, hv)  # device models and monitor paths are software: they scale with IPC
    if virt and dev:
        steps.append(cm.Step("cycles", cycles=(k[dev] if dev in k else getattr(hv, dev)) * sw, label=dev))
    if virt and spec.get("call_ret") and eff.mode == "bt":
        steps.append(cm.Step("cycles", cycles=hv.bt["call_ret_extra_cycles"] * sw, label="translated call/ret"))
    if virt and spec.get("fault_reflect"):
        if eff.mode == "bt":
            steps.append(cm.Step("cycles", cycles=hv.bt["fault_cycles"] * sw, label="fault reflected"))
        elif eff.mode == "pv":
            steps.append(cm.Step("cycles", cycles=hv.pv["fault_bounce_cycles"] * sw, label="fault bounced"))
    if spec.get("ibpb"):
        native = k["ibpb_cycles"]  # KVM passes IA32_PRED_CMD through: the barrier itself, no exit
    if spec.get("pause"):
        native = cpu.pause_cycles  # uncontended: the PAUSE-loop window is never exhausted
    if spec.get("flushes_tlb"):
        native += cm.tlb_refill_cycles(cpu, eff, cfg)  # the guest's own global flush, paid natively too
    if spec.get("isr"):
        native += k["isr_cycles"]
    if "timer" in spec:
        return _timer_plan(spec["timer"], cpu, hv, cfg, eff, k)
    replaced = spec.get("replaces_native") and steps
    return Plan(before=([] if replaced else [_native(native)]) + steps)


def _timer_plan(kind: str, cpu: Cpu, hv: Hypervisor | None, cfg: cm.VirtConfig, eff: cm.Effective, k: dict) -> Plan:
    isr = _native(k["isr_cycles"])
    if eff.mode == "native":
        arm = [_native(100)]  # WRMSR to IA32_TSC_DEADLINE on bare metal
        return Plan(before=arm, deadline_cycles=k["deadline_cycles"], after=(isr,)) if kind == "deadline" \
            else Plan(before=arm + [isr])
    if eff.mode != "hw":
        steps = cm.event_steps("timer_irq", cpu, hv, cfg, eff)
        return Plan(before=steps[:1], deadline_cycles=k["deadline_cycles"], after=tuple(steps[1:]) + (isr,)) \
            if kind == "deadline" else Plan(before=steps + [isr])
    sw = cm.software_scale(cpu, hv)
    arm = [cm.Step("exit", reason="msr_write", label="msr_write"),
           cm.Step("cycles", cycles=hv.timer_arm_cycles * sw, label="arm timer")]
    inject = [cm.Step("cycles", cycles=hv.inject_cycles * sw, label="inject")]
    eoi = [] if eff.on("apicv") else [cm.Step("exit", reason="apic_access", emulate=True, label="apic_access")]
    if eff.on("preemption_timer"):
        fire = [cm.Step("exit", reason="preemption_timer", label="preemption_timer")]
    else:
        fire = [cm.Step("exit", reason="external_interrupt", label="external_interrupt"),
                cm.Step("cycles", cycles=hv.hrtimer_callback_cycles * sw, label="hrtimer callback")]
    if kind == "deadline":
        return Plan(before=arm, deadline_cycles=k["deadline_cycles"], after=tuple(fire + inject + [isr] + eoi))
    # an already-expired deadline is injected on the same entry; without the fast path KVM first arms the
    # preemption timer with zero and takes one more exit for it
    extra = fire if (eff.on("preemption_timer") and not cfg.timer_fastpath) else []
    return Plan(before=arm + extra + inject + [isr] + eoi)


@dataclass(frozen=True)
class Prediction:
    benchmark: str
    suite: str
    mode: str
    paging: str
    cycles: float
    exits: int


def _paging_label(eff: cm.Effective, cpu: Cpu) -> str:
    if eff.mode == "native":
        return "native"
    if eff.nested:
        return "npt" if cpu.vendor == "amd" else "ept"
    return "shadow"


def predict(name: str, cpu: Cpu, hv: Hypervisor | None, cfg: cm.VirtConfig) -> Prediction:
    """Rate-mode prediction of one iteration of `name`: cycles and exits.

    Closed form: the sum of step costs, with the TLB refill of an untagged TLB charged once per run of
    back-to-back exits (the guest work after the run pays it), and a deadline as max(work, deadline)."""
    eff = cm.effective(cpu, hv, cfg)
    p = plan(name, cpu, hv, cfg)

    def cost(steps) -> float:
        return cm.steps_cost(list(steps), cpu, hv, cfg, eff).cycles

    before = cost(p.before)
    total = (max(before, p.deadline_cycles) if p.deadline_cycles is not None else before) + cost(p.after)
    n = sum(s.times for s in [*p.before, *p.after] if s.kind == "exit")
    exits = int(n) if float(n).is_integer() else n
    return Prediction(name, benchmarks()[name]["suite"], eff.mode, _paging_label(eff, cpu), total, exits)


def step_through(name: str, cpu: Cpu, hv: Hypervisor | None, cfg: cm.VirtConfig, iterations: int = 1000) -> Prediction:
    """Event-mode prediction: step `iterations` iterations exit by exit on a cycle clock and average."""
    eff = cm.effective(cpu, hv, cfg)
    p = plan(name, cpu, hv, cfg)
    refill = cm.tlb_refill_cycles(cpu, eff, cfg) if cm.flushes_on_transition(eff) else 0.0
    clock = 0.0
    exits = 0
    tlb_valid = True
    for _ in range(iterations):
        start = clock
        for phase, steps in (("before", p.before), ("after", p.after)):
            if phase == "after" and p.deadline_cycles is not None:
                clock = max(clock, start + p.deadline_cycles)  # spin until the timer fires
            for s in steps:
                if s.kind == "exit" and s.times != 1:  # expected repetitions, each after guest work
                    if not tlb_valid:
                        clock += refill
                        tlb_valid = True
                    clock += s.times * cm.step_cycles(s, cpu, hv, cfg, eff)
                    exits += s.times
                elif s.kind == "exit":
                    c = cm.step_cycles(s, cpu, hv, cfg, eff)
                    if refill:
                        c -= refill  # the refill is paid lazily, by the guest work that follows
                        tlb_valid = False
                    exits += 1
                    clock += c
                else:
                    if not tlb_valid:
                        clock += refill
                        tlb_valid = True
                    clock += s.cycles
        if not tlb_valid:  # the next iteration's first guest work refills; charge it to this iteration
            clock += refill
            tlb_valid = True
    n = round(exits / iterations, 9)  # an expected repetition (times < 1, e.g. a TPR-threshold exit) stays a fraction
    return Prediction(name, benchmarks()[name]["suite"], eff.mode, _paging_label(eff, cpu), clock / iterations,
                      round(n) if abs(n - round(n)) < 1e-9 else n)
