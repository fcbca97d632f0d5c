"""The SimPy layer: it orders coarse events (interval ticks); per-interval arithmetic is numpy over all VMs and hosts."""
