"""Simulated markers, phantoms and the sample tilt series (GUI-free)."""
