"""Tests of the discrete-event simulator, the SWF reader and the centralized baselines."""
