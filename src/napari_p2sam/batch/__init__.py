"""Whole datasets: a manifest of items checked before any work, this batch's records, and its QC report.

No torch here: the checks and reports run in the command's own process; the
model runs on the Dask workers.
"""

from .run import BatchSummary, run_batch

__all__ = ["BatchSummary", "run_batch"]
