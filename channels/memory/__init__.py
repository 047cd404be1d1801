"""Every budgeted buffer of the process: pools, budgets and the buffers kept for reuse."""
