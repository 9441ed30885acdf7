"""The errors the Glue emulator answers with: each its AWS error code and HTTP status.

The model and the backend raise them; ``server.py`` turns one into the wire answer
``{"__type": code, "message": message}`` with its status, which botocore maps to the
``ClientError`` and modelled exception class it would raise against AWS.
"""

from __future__ import annotations


class GlueError(Exception):
    """An error Glue answers with: its code (the __type), HTTP status and message."""

    code = "InternalServiceException"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EntityNotFound(GlueError):
    code, status = "EntityNotFoundException", 400


class AlreadyExists(GlueError):
    code, status = "AlreadyExistsException", 400


class InvalidInput(GlueError):
    code, status = "InvalidInputException", 400


class ConcurrentRunsExceeded(GlueError):
    code, status = "ConcurrentRunsExceededException", 400


class IllegalSessionState(GlueError):
    """A session call that its session's status does not allow (RunStatement on a stopped one)."""

    code, status = "IllegalSessionStateException", 400


class IdempotentParameterMismatch(GlueError):
    code, status = "IdempotentParameterMismatchException", 400


class UnknownOperation(GlueError):
    """An X-Amz-Target the emulator does not serve (or not AWSGlue's)."""

    code, status = "UnknownOperationException", 400


class SerializationError(GlueError):
    """A request body that is not JSON."""

    code, status = "SerializationException", 400
