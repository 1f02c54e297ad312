"""Fixtures shared by the integration tests of the OpenAI text channel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai_responses import FakeOpenAIResponses

MODEL = "gpt-4.1-mini"


@pytest.fixture
def fake() -> Iterator[FakeOpenAIResponses]:
    """The local fake of the Responses API (every request checked with the SDK's types)."""
    with FakeOpenAIResponses(MODEL) as server:
        yield server
