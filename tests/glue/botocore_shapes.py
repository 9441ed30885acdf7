"""The contract test: every raw JSON answer of the emulator must fit botocore's Glue model.

botocore's parser quietly drops members it does not know and coerces what it can, so a parsed
response proves little. This checks the raw body against the operation's output shape: no
unknown member, required members present, every value of the modelled type.

One field where the service answers what the model does not allow, and clients read the
service: ``StatementOutput.Status`` is ``ok`` or ``error`` (AWS's Glue kernel takes anything but
``ok`` for an error and reads its traceback; dbt-glue checks for ``error``), where the model
reuses the statement's state enum. :data:`SERVICE_ENUMS` holds it.
"""

from __future__ import annotations

import json

from botocore.model import ListShape, MapShape, Shape, StructureShape


class ContractError(AssertionError):
    pass


# (structure, member) → the values the service sends there, in place of the model's enum.
SERVICE_ENUMS = {("StatementOutput", "Status"): ("ok", "error")}


def check(value, shape: Shape, path: str = "$") -> None:
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            raise ContractError(f"{path}: expected an object for {shape.name}, got {value!r}")
        unknown = set(value) - set(shape.members)
        if unknown:
            raise ContractError(f"{path}: members not in {shape.name}: {sorted(unknown)}")
        for name in shape.required_members:
            if name not in value:
                raise ContractError(f"{path}: required member {name} missing")
        for name, member in value.items():
            if (allowed := SERVICE_ENUMS.get((shape.name, name))) is not None:
                if member not in allowed:
                    raise ContractError(f"{path}.{name}: {member!r} is not one of {allowed}")
                continue
            check(member, shape.members[name], f"{path}.{name}")
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            raise ContractError(f"{path}: expected a list, got {value!r}")
        for i, item in enumerate(value):
            check(item, shape.member, f"{path}[{i}]")
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            raise ContractError(f"{path}: expected a map, got {value!r}")
        for key, item in value.items():
            check(key, shape.key, f"{path}.<key>")
            check(item, shape.value, f"{path}[{key!r}]")
    elif kind == "string":
        if not isinstance(value, str):
            raise ContractError(f"{path}: expected a string, got {value!r}")
        if shape.enum and value not in shape.enum:
            raise ContractError(f"{path}: {value!r} is not one of {shape.enum}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ContractError(f"{path}: expected an integer, got {value!r}")
    elif kind in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ContractError(f"{path}: expected a number, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise ContractError(f"{path}: expected a boolean, got {value!r}")
    elif kind == "timestamp":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ContractError(f"{path}: expected epoch seconds, got {value!r}")
    else:
        raise ContractError(f"{path}: shape type {kind} not checked")


class ContractRecorder:
    """Registered on a boto3 client: checks each answer, remembers which operations it saw."""

    def __init__(self, client) -> None:
        self.seen: list[str] = []
        self.errors: list[str] = []
        self.model = client.meta.service_model
        client.meta.events.register("after-call.glue", self._after_call)

    def _after_call(self, http_response, parsed, model, **kwargs) -> None:
        body = json.loads(http_response.content or b"{}")
        if http_response.status_code >= 300:
            code = body.get("__type", "")
            known = {s.name for s in model.error_shapes} | {"InternalServiceException"}
            if code not in known and code != "UnknownOperationException":
                self.errors.append(f"{model.name}: error {code} is not modelled for it")
            return
        try:
            check(body, model.output_shape)
            self.seen.append(model.name)
        except ContractError as exc:
            self.errors.append(f"{model.name}: {exc}")
