"""Workload traces: readers (native, PlanetLab), synthetic generators, resampling to the scenario grid."""
