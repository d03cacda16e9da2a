"""Errors that stop a job before it writes anything."""


class LakeRecError(Exception):
    """Base class: a problem the user must fix; the CLI prints the message, not a traceback."""


class StructuralError(LakeRecError):
    """A missing table or column, a wrong type, a corrupt file: the job stops before writing."""


class ConfigError(LakeRecError):
    """A configuration file or override that cannot be used."""
