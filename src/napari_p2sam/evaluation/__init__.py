"""Evaluation as published (docs/algorithm.md §9): datasets, metrics, a shared-embedding runner and reports.

No Qt and no napari here; the ``napari-p2sam eval`` command is a thin shell over it.
"""
