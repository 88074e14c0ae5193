"""Submission: a run configuration → validated JobSpec → snapshot → run record (Queued) → ``target.submit``."""
from runyard.submission.flow import Prepared, RunKind, job_spec_of, prepare, restore_snapshot, submit

__all__ = ["Prepared", "RunKind", "job_spec_of", "prepare", "restore_snapshot", "submit"]
