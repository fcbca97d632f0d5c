"""What-if sweeps: expand a `sweep:` block into runs, execute them on a local pool or a Dask cluster, resume."""
