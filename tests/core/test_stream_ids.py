"""Client-supplied stream ids: only what Redis would take as one exact id is accepted."""

from __future__ import annotations

import pytest

from services.core.stream_ids import MAX_ID, read_after, stream_id


@pytest.mark.parametrize(
    "text",
    [
        "1-0\n",
        "1-0 ",
        "1",
        "-1-0",
        "1-",
        "\u0661-0",  # an Arabic-Indic digit: int() reads it, Redis does not
        f"{2**64}-0",
        f"0-{2**64}",
        "99999999999999999999-0",
        5,
        None,
    ],
)
def test_what_redis_would_refuse_or_read_as_a_range_is_not_an_id(text: object) -> None:
    assert stream_id(text) is None
    assert read_after(text) is None


def test_ids_up_to_the_largest_parse_and_only_the_largest_cannot_be_read_after() -> None:
    largest = f"{2**64 - 1}-{2**64 - 1}"
    assert stream_id("0-0") == (0, 0) and stream_id("1764000000000-7") == (1764000000000, 7)
    assert stream_id(largest) == MAX_ID
    assert read_after(largest) is None
    assert read_after("0-0") == (0, 0)
