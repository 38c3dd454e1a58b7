"""Rendering of run events on the terminal (rich). The UI renders; it never decides or computes."""
