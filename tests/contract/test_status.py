"""The status words (musicpipe.contract.status): str enums whose str(), format(), f-strings,
JSON and DynamoDB form are the plain value, as the strings they replace were."""

from __future__ import annotations

import json
from enum import Enum

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.serialize import create_serializer
from botocore.session import get_session

from musicpipe.contract.status import ArchiveOutcome, StrEnum, TrackerStatus, ValidationStatus

ALL = [*ValidationStatus, *TrackerStatus, *ArchiveOutcome]


def test_the_values_are_the_words_stored_so_far():
    assert [s.value for s in ValidationStatus] == ["PASSED", "FAILED", "NOT_VALIDATED"]
    assert [s.value for s in TrackerStatus] == [
        "PROCESSING", "STAGED", "COMPLETED", "FAILED", "QUARANTINED", "NOT_VALIDATED",
    ]  # fmt: skip
    assert [s.value for s in ArchiveOutcome] == [
        "archived", "skipped_changed", "already_archived", "missing", "not_completed", "failed",
    ]  # fmt: skip
    assert all(isinstance(s, StrEnum) and isinstance(s, str) for s in ALL)


@pytest.mark.parametrize("status", ALL, ids=str)
def test_text_forms_are_the_plain_value(status):
    value = status.value
    assert type(value) is str
    assert str(status) == value and f"{status}" == value and format(status) == value
    assert f"{status:<20}|" == f"{value:<20}|" and format(status, ">16") == format(value, ">16")
    assert "%s" % status == value  # noqa: UP031 (the old formatting too)
    assert json.dumps(status) == json.dumps(value)
    assert json.dumps({"status": status}, indent=2) == json.dumps({"status": value}, indent=2)
    assert status == value and value == status and hash(status) == hash(value)
    assert {value: 1}[status] == 1 and {status: 1}[value] == 1


@pytest.mark.parametrize("status", ALL, ids=str)
def test_boto3_dynamodb_stores_the_plain_value(status):
    """What boto3's DynamoDB resource sends: TypeSerializer's attribute value, then botocore's
    JSON request body; both as for the plain string."""
    attribute = TypeSerializer().serialize(status)
    assert attribute == {"S": status.value}
    assert TypeDeserializer().deserialize(attribute) == status.value
    model = get_session().get_service_model("dynamodb")
    operation = model.operation_model("PutItem")
    serializer = create_serializer(model.metadata["protocol"], include_validation=True)

    def body(value: str) -> bytes:
        params = {"TableName": "t", "Item": {"status": TypeSerializer().serialize(value)}}
        return serializer.serialize_to_request(params, operation)["body"]

    assert body(status) == body(status.value)
    assert json.loads(body(status))["Item"]["status"] == {"S": status.value}


def test_a_plain_str_enum_mixin_would_not_do():
    """Why the base exists: on 3.11+ format() of a (str, Enum) names the member."""

    class Plain(str, Enum):  # noqa: UP042 (the mixin itself is the point)
        A = "a"

    assert str(ValidationStatus.PASSED) == "PASSED"
    assert str(Plain.A) == "Plain.A"  # what __str__ of the mixin gives, on every version
