"""Errors of the lifecycle core; each interface maps them to its own way of saying no."""


class LifecycleError(Exception):
    """Base of every refusal the lifecycle core makes."""


class RunNotFound(LifecycleError):
    """No run has that id (or the caller may not see it)."""


class RunConflict(LifecycleError):
    """The action does not fit the run's present state or tier."""


class RuleViolation(LifecycleError):
    """Well-formed input that breaks a rule of the product (order of timestamps, say)."""
