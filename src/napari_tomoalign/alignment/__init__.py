"""The alignment model and its staged Levenberg-Marquardt solver (GUI-free)."""
