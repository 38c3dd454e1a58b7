"""How protocol messages move: the seeded simulated network and the harness that drives cores on it."""
