"""Where committed jobs run: the simulated clock, local processes, or a Slurm cluster."""
