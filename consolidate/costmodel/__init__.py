"""Trace-driven virtualization overhead: guest event rates and I/O rates of all VMs, priced by the core model,
per interval, with array arithmetic. Pure functions; the engine calls them once per accounting tick."""
