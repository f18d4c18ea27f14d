"""Aligned stacks and weighted back-projection (GUI-free)."""
