"""Tests of the domain, the specialist agents and the consensus graph."""
