"""Consensus: quorum math, sans-IO protocol cores (PBFT, Tendermint) and a deterministic simulated network."""
