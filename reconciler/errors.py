"""Typed errors that say whether to retry.

Backends translate libvirt/rados/rbd exceptions into these, so nothing above the backend
layer ever sees a library exception.  The executor decides retry behaviour from the type
alone: `Transient` (and anything unknown) is retried with backoff, `Terminal` stops that
resource until its spec changes, `NotFound`/`Conflict` let idempotent actions decide
whether the world is already as wanted.
"""

from __future__ import annotations


class VolctlError(Exception):
    """Base of every error volctl raises on purpose."""

    retryable: bool = True


class SpecError(VolctlError):
    """The desired state is invalid.  Never retried; shown to the user."""

    retryable = False


class BackendError(VolctlError):
    """A backend call failed."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NotFound(BackendError):
    """The object does not exist (domain, image, snapshot, disk)."""

    retryable = False


class Conflict(BackendError):
    """The object exists but is not ours, or exists with another identity."""

    retryable = False


class Transient(BackendError):
    """Worth retrying: timeouts, lost connections, busy locks."""

    retryable = True


class Terminal(BackendError):
    """Retrying will not help until something changes (bad XML, unsupported operation)."""

    retryable = False


class CallTimeout(Transient):
    """A backend call did not finish within its deadline."""
