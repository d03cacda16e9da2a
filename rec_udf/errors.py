"""Errors raised on executors. The CLI prints their message (no traceback), like lakerec's own."""


class BundleError(Exception):
    """A model bundle that cannot be used: a missing, truncated or altered file, a manifest that does
    not fit this runtime (format or prompt template version). The message names the file or field."""
