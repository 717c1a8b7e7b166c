"""The one model-reference grammar: every form, and every bad one with a message saying why."""

from __future__ import annotations

import pytest

from loopml.batch import ModelRef as BatchRef
from loopml.core.errors import LoopmlError, ModelReferenceError
from loopml.registry.models import parse_model_reference
from loopml.registry.reference import ModelReference, parse_reference
from loopml.serving.model import ModelRef as ServingRef


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fraud", ModelReference("fraud", alias="champion")),
        ("  fraud  ", ModelReference("fraud", alias="champion")),
        ("fraud@champion", ModelReference("fraud", alias="champion")),
        ("fraud@challenger", ModelReference("fraud", alias="challenger")),
        ("fraud@prod-eu_2", ModelReference("fraud", alias="prod-eu_2")),
        ("fraud/3", ModelReference("fraud", version="3")),
        ("fraud/007", ModelReference("fraud", version="7")),
        ("models:/fraud", ModelReference("fraud", alias="champion")),
        ("models:/fraud@challenger", ModelReference("fraud", alias="challenger")),
        ("models:/fraud/3", ModelReference("fraud", version="3")),
        ("credit.fraud-v2", ModelReference("credit.fraud-v2", alias="champion")),
    ],
)
def test_every_form_parses_the_same_in_serving_batch_and_the_registry(
    text: str, expected: ModelReference
) -> None:
    assert parse_reference(text) == expected
    assert ServingRef.parse(text) == expected
    assert BatchRef.parse(text) == expected
    assert parse_model_reference(text) == (expected.name, expected.alias, expected.version)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("a@", "the alias after '@' is missing"),
        ("@b", "the model name is missing"),
        ("a/x", "the version 'x' is not a positive whole number"),
        ("a/0", "the version '0' is not a positive whole number"),
        ("a/-1", "the version '-1' is not a positive whole number"),
        ("a/", "the version after '/' is missing"),
        ("models:/", "the model name is missing"),
        ("models:/@champion", "the model name is missing"),
        ("a/b/c", "is not a positive whole number"),
        ("a@b/3", "not both"),
        ("a@b c", "may hold only letters"),
        ("a@b@c", "may hold only letters"),
        ("runs:/abc/model", "may not contain"),
        ("my model@champion", "may not contain"),
    ],
)
def test_bad_references_say_what_is_wrong_and_what_would_be_right(text: str, why: str) -> None:
    with pytest.raises(ModelReferenceError) as caught:
        parse_reference(text)
    message = str(caught.value)
    assert why in message
    assert repr(text) in message
    assert "NAME@ALIAS" in message and "models:/NAME/VERSION" in message
    assert isinstance(caught.value, LoopmlError)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "text", ["fraud/latest", "fraud@latest", "models:/fraud/LATEST", "models:/fraud@Latest"]
)
def test_latest_is_refused_one_way_with_what_to_use_instead(text: str) -> None:
    with pytest.raises(ModelReferenceError, match="'latest' is not supported") as caught:
        parse_reference(text)
    assert "fraud@champion" in str(caught.value)


def test_a_reference_holds_exactly_one_of_alias_and_version() -> None:
    with pytest.raises(ModelReferenceError):
        ModelReference("fraud")
    with pytest.raises(ModelReferenceError):
        ModelReference("fraud", alias="champion", version="1")
    assert str(ModelReference("fraud", alias="champion")) == "fraud@champion"
    assert str(ModelReference("fraud", version="2")) == "fraud/2"
    assert ModelReference("fraud", alias="champion").watches
    assert not ModelReference("fraud", version="2").watches
