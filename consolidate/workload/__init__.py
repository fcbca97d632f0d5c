"""Workload traces: readers (native, PlanetLab), synthetic generators, resampling to the scenario grid."""
# Importing the built-in readers registers them (consolidate.workload.sources), so whoever imports any part of
# the package, the builder included, sees every kind.
from consolidate.workload import alibaba, azure, bitbrains, google, native, opendc, planetlab, synthetic  # noqa: F401
