"""Unit conventions that more than one layer relies on.

Memory: every `_mb` figure in scenarios, traces and results is a mebibyte, 2^20 bytes, as hypervisors and cloud
providers size guest memory. The one exception is CloudSim's own fixed-delay migration model under
`cloudsim_compat`, which reproduces CloudSim's arithmetic: memory in MB over a bandwidth in Mbit/s counts a
megabyte as 10^6 bytes.
"""
BYTES_PER_MB = 2 ** 20
CLOUDSIM_BYTES_PER_MB = 10 ** 6
