"""The native trace schema (DESIGN.md section 5): one place that names every column and its unit."""

TIME = "time_s"
CPU = "cpu_util"  # fraction 0..1 of the VM's vCPUs
VM = "vm"  # optional: several VMs in one long file

# Optional columns, all non-negative. Guest event rates are per second of vCPU time.
OPTIONAL = (
    "mem_used_bytes",
    "dirty_pages_per_s",
    "net_rx_pps",
    "net_tx_pps",
    "net_bytes_per_s",
    "disk_iops",
    "disk_bytes_per_s",
    "ctx_switches_per_s",
    "page_faults_per_s",
    "pte_writes_per_s",
    "syscalls_per_s",
    "timer_irqs_per_s",
    "ipis_per_s",
    "halts_per_s",
    "cpuid_per_s",
    "msr_accesses_per_s",
    "tlb_misses_per_s",
)
# Optional per-VM columns (constant over a VM's rows; a file with any of them is read as a timed trace: VMs
# arrive and leave, native.py): its life on the trace's clock (seconds, epoch s/ms or ISO 8601 like time_s) and
# its shape (vCPUs; memory in MiB)
START, END, VCPUS, MEMORY = "start_s", "end_s", "vcpus", "memory_mb"
PER_VM = (START, END, VCPUS, MEMORY)
KNOWN = (TIME, CPU, VM, *OPTIONAL, *PER_VM)
