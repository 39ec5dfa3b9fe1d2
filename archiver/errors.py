"""The one exception tree of runway-archiver; every class carries the exit code it maps to.

    ArchiverError                 1  anything the archiver raises on purpose
    ├── UsageError                2  bad command line, task list or config
    │   ├── ConfigError           2  a config key is unknown, mistyped or missing
    │   ├── MissingExtra          2  the engine asked for is an extra this install lacks
    │   ├── StoreAccessError      2  the bucket refused our credentials, or does not exist
    │   └── NoArchive             2  a command that reads an archive found no catalog there
    ├── AccountError              3  an answer about the whole account: the run stops at once
    │   ├── AuthError             3  401: the token is wrong or was revoked
    │   ├── PaymentRequired       3  402: the useapi.net subscription has lapsed
    │   └── AccountBroken         3  596: the linked Runway account is in an error state
    ├── ApiUnreachable            1  no request reaches the API: the run stops early
    ├── Interrupted         130/143  SIGINT or SIGTERM: the run stops, what finished is kept
    ├── LockedError              75  another run holds this archive's lock (EX_TEMPFAIL)
    ├── StorageError             74  the archive folder cannot be written, or the catalog is damaged
    │   └── CatalogUnreachable   74  the catalog's database cannot be reached (or was lost)
    ├── LeaseLost                 1  another run took over a task whose claim expired
    └── TaskError                 1  one task cannot be archived; the run goes on
        ├── ApiError                 the API answered with an error for this task
        ├── InvalidTaskData          the task JSON is not what the API page describes
        ├── InvalidSidecar           a task.yaml does not parse or lacks what the archiver writes
        ├── UnsafePath               something not ours sits where a task's folder goes
        ├── TransferError            a request failed on the wire or with a bad status
        │   ├── TransientError       worth retrying (5xx, 429, reset, timeout, short body)
        │   │   └── NetworkError     no HTTP answer at all: refused, reset, timed out
        │   ├── TooLarge             a body is larger than a size limit allows
        │   └── UrlExpired           a signed asset URL was refused: fetch the task again
        │       └── AssetGone        ... with 404/410: the CDN may no longer have the asset
        └── VerifyError              a file disagrees with what the API claimed
            └── ProbeTimeout         the probe engine did not answer in time (killed)

Anything else escaping is a bug: the command line prints one line and exits 70 (EX_SOFTWARE).
Messages never contain the token or a signed URL's query string (`scrub.text` is applied to
every message before it is shown or stored).
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


class MissingExtra(UsageError):
    """An optional engine (a bucket, ...) was asked for, and its extra is not installed."""


class StoreAccessError(UsageError):
    """The store refused the credentials or has no such bucket: found before any download."""


class NoArchive(UsageError):
    """`verify`, `status`, `gallery`: the folder (or bucket, or database) holds no catalog."""


class AccountError(ArchiverError):
    """useapi answered about the whole account, not the task asked for: no further request is
    made, and no task is marked by it (the next run after the fix fetches everything)."""

    exit_code = 3


class AuthError(AccountError):
    """The API answered 401: the token is wrong or was revoked."""


class PaymentRequired(AccountError):
    """The API answered 402: the useapi.net subscription has lapsed."""


class AccountBroken(AccountError):
    """The API answered 596: a linked Runway account is in an error state; re-add it at useapi."""


class ApiUnreachable(ArchiverError):
    """Every API request failed on the wire: one line for the run, not one per task."""


class Interrupted(ArchiverError):
    """The run was stopped by a signal; the exit code is 128 + its number."""

    def __init__(self, signum: int) -> None:
        super().__init__("interrupted" + (" (SIGTERM)" if signum == 15 else ""))
        self.exit_code = 128 + signum


class LockedError(ArchiverError):
    """Another run holds the archive's lock."""

    exit_code = 75


class StorageError(ArchiverError):
    """Writing to the archive failed (disk full, permissions, a planted symlink, the store)."""

    exit_code = 74


class CatalogUnreachable(StorageError):
    """A PostgreSQL catalog refused the connection, or it was lost past the retries."""


class LeaseLost(ArchiverError):
    """This run's claim on a task expired and another run took the task over: the task stops
    here at once, its temp files removed, nothing written under a final name or to the catalog.
    Caught per task by the pipeline; never ends the run."""


class TaskError(ArchiverError):
    """One task could not be archived; recorded as state `error`, the run goes on."""


class ApiError(TaskError):
    """The API answered this task with an error status (404, 400, ...)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidTaskData(TaskError):
    """The task JSON is malformed; the message names the field at fault.

    `task_status` is the API's `status` when the JSON carried one, for the report.
    """

    def __init__(self, message: str, *, task_status: str | None = None) -> None:
        super().__init__(message)
        self.task_status = task_status


class InvalidSidecar(TaskError, ValueError):
    """A task.yaml is not a sidecar the archiver wrote: it does not parse or misses its sections."""


class UnsafePath(TaskError):
    """A symlink or file sits where the task's folder belongs; it is not followed or replaced."""


class TransferError(TaskError):
    """An HTTP request failed: connection, timeout, bad status or a body of the wrong size."""


class TransientError(TransferError):
    """A failure worth retrying; `retry_after` is the server's wish in seconds, if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NetworkError(TransientError):
    """No HTTP answer: the connection was refused, reset or timed out; `reason` says which."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class TooLarge(TransferError):
    """A body announced or streamed more bytes than the limit for that file allows."""


class UrlExpired(TransferError):
    """The CDN refused a signed URL (403/404/410): the task JSON must be fetched again."""


class AssetGone(UrlExpired):
    """The CDN answered 404/410: expired, or gone for good if a fresh URL gets the same."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class VerifyError(TaskError):
    """A downloaded file disagrees with the API's claims or is not a complete media file."""


class ProbeTimeout(VerifyError):
    """The probe engine did not answer within probe_timeout (killed). Says nothing of the file."""


EX_SOFTWARE = 70  # an internal error: a bug, reported in one line (the traceback with --debug)
