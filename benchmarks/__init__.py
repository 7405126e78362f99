"""skal's benchmarks: the grid runner (``run_all``), its report (``report``) and speed tables."""
