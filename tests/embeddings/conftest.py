"""Fixtures for the embeddings tests: one BirdNET for the whole session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def birdnet():
    """The real model, loaded once (its interpreters are reused by every test that runs it)."""
    from embeddings.birdnet import BirdNET

    return BirdNET().load()
