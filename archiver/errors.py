"""The one exception tree of runway-archiver; every class carries the exit code it maps to.

    ArchiverError                 1  anything the archiver raises on purpose
    ├── UsageError                2  bad command line, task list or config
    │   └── ConfigError           2  a config key is unknown, mistyped or missing
    ├── AuthError                 3  the API rejected the token: the run stops at once
    ├── LockedError              75  another run holds this archive's lock (EX_TEMPFAIL)
    ├── StorageError             74  the archive folder cannot be written (EX_IOERR)
    └── TaskError                 1  one task cannot be archived; the run goes on
        ├── ApiError                 the API answered with an error for this task
        ├── InvalidTaskData          the task JSON is not what the API page describes
        ├── UnsafePath               something not ours sits where a task's folder goes
        ├── TransferError            a request failed on the wire or with a bad status
        │   ├── TransientError       worth retrying (5xx, 429, reset, timeout, short body)
        │   └── UrlExpired           a signed asset URL was refused: fetch the task again
        └── VerifyError              a file disagrees with what the API claimed

Messages never contain the token or a signed URL's query string (see `http.redact`).
"""

from __future__ import annotations


class ArchiverError(Exception):
    """Base of everything the archiver raises on purpose."""

    exit_code = 1


class UsageError(ArchiverError):
    """The command line, the task list or the config is wrong."""

    exit_code = 2


class ConfigError(UsageError):
    """A config key is unknown, has the wrong type, or a required value is missing."""


class AuthError(ArchiverError):
    """The API answered 401: the token is wrong, so no further request is made."""

    exit_code = 3


class LockedError(ArchiverError):
    """Another run holds the archive's lock."""

    exit_code = 75


class StorageError(ArchiverError):
    """Writing to the archive folder failed (disk full, permissions, a planted symlink)."""

    exit_code = 74


class TaskError(ArchiverError):
    """One task could not be archived; recorded as state `error`, the run goes on."""


class ApiError(TaskError):
    """The API answered this task with an error status (404, 400, ...)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidTaskData(TaskError):
    """The task JSON is malformed; the message names the field at fault."""


class UnsafePath(TaskError):
    """A symlink or file sits where the task's folder belongs; it is not followed or replaced."""


class TransferError(TaskError):
    """An HTTP request failed: connection, timeout, bad status or a body of the wrong size."""


class TransientError(TransferError):
    """A failure worth retrying; `retry_after` is the server's wish in seconds, if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UrlExpired(TransferError):
    """The CDN refused a signed URL (403/404/410): the task JSON must be fetched again."""


class VerifyError(TaskError):
    """A downloaded file disagrees with the API's claims or is not a complete media file."""
