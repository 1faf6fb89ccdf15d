"""Errors of the lifecycle core; each interface maps them to its own way of saying no."""


class LifecycleError(Exception):
    """Base of every refusal the lifecycle core makes."""


class RunNotFound(LifecycleError):
    """No run has that id (or the caller may not see it)."""


class RunConflict(LifecycleError):
    """The action does not fit the run's present state or tier."""


class RuleViolation(LifecycleError):
    """Well-formed input that breaks a rule of the product (order of timestamps, say)."""


class BadInput(LifecycleError, ValueError):
    """An ask that cannot be read: a malformed date, page, filter or value (a 400 at every door)."""


class FolderKept(LifecycleError):
    """A run folder holds bytes its archive does not (a file written late, one changed): it is kept, not removed.

    ``alert`` is raised by the attempt that records this failure, so a person sees it.
    """

    SHOWN = 20

    def __init__(self, job_id: object, folder: str, differences: list[str]):
        self.differences = differences
        shown = "; ".join(differences[: self.SHOWN])
        if len(differences) > self.SHOWN:
            shown += f"; and {len(differences) - self.SHOWN} more"
        message = f"kept the folder {folder}: it holds what its archive does not: {shown}"
        super().__init__(message)
        self.alert = {
            "kind": "archive_failed",
            "severity": "warning",
            "message": message[:2000],
            "subject": str(job_id),
            "job_id": str(job_id),
            "files": differences[:100],
        }
