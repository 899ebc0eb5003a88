"""A request's samplesheet, read so that its rows are validated with the request: a local file
opened only inside the roots its job may use (as every input), or an object; at most
`samplesheet.MAX_BYTES`, UTF-8 text. The validation itself (`contract.request`) reads no file:
it is given the text.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cnvkit_nf.contract.paths import Location
from cnvkit_nf.contract.problems import Problem
from cnvkit_nf.contract.request import Validation
from cnvkit_nf.contract.samplesheet import FIELD, MAX_BYTES
from cnvkit_nf.launch.local_files import NO_ROOTS, refusal
from cnvkit_nf.storage import confined
from cnvkit_nf.storage import objects as storage
from cnvkit_nf.storage.confined import Roots

TOO_LARGE = (f"is larger than {MAX_BYTES} bytes; a samplesheet is a small CSV or TSV file "
             "of one row per BAM")


def with_rows(validation: Validation, again: Callable[[str], Validation], roots: Roots,
              storage_config: str | None) -> Validation:
    """A request's validation with its samplesheet's rows: `validation` as it is when the
    request names no sheet (or its name is refused), else `again(text)` once the sheet is
    read, or `validation` with why it could not be."""
    request = validation.request
    if request is None or request.samplesheet is None:
        return validation
    text, problems = read(request.samplesheet, roots, storage_config)
    if text is None:
        return Validation(validation.problems + problems, request)
    return again(text)


def read(location: Location, roots: Roots, storage_config: str | None
         ) -> tuple[str | None, list[Problem]]:
    """A samplesheet's text, or None and why it cannot be read."""
    try:
        data = _remote(location, storage_config) if location.is_remote \
            else _local(location, roots)
    except _Unread as err:
        return None, [Problem(FIELD, str(err))]
    if len(data) > MAX_BYTES:
        return None, [Problem(FIELD, f"{location.raw}: {TOO_LARGE}")]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as err:
        return None, [Problem(FIELD, f"{location.raw}: is not UTF-8 text (byte {err.start}); "
                                     "save it as UTF-8 CSV or TSV")]


class _Unread(Exception):
    """The sheet could not be read: the message says why."""


def _local(location: Location, roots: Roots) -> bytes:
    """At most MAX_BYTES + 1 bytes of a local sheet, opened inside the readable roots."""
    if not roots.readable:
        raise _Unread(NO_ROOTS)
    path = roots.absolute(location.key)
    try:
        fd = confined.open_file(path, roots.readable)
    except confined.Refused as err:
        raise _Unread(refusal(location.raw, err, roots)) from None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(MAX_BYTES + 1)


def _remote(location: Location, storage_config: str | None) -> bytes:
    """At most MAX_BYTES + 1 bytes of a sheet in object storage."""
    try:
        s3 = storage.client(storage.load_settings(storage_config), location.scheme)
        return storage.read_head(s3, location, MAX_BYTES)
    except storage.StorageError as err:
        raise _Unread(str(err)) from None
