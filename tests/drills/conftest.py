"""Drill tests: the scenario files and the CLI, and one drill end to end on a lab stack."""
