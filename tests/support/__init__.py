"""Helpers the tests share (not tests themselves): data paths, GUI module names, the hostile-input harness."""
