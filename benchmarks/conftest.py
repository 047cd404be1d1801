"""Fixtures of the pytest-benchmark suites: the endpoint, and a module's large and small sets.

A module that uses ``large`` or ``small`` says their size as ``LARGE`` and
``SMALL``, (count, bytes) tuples.
"""

from __future__ import annotations

import pytest
from sets import upload

from channels.testing import dummy_credentials
from channels.testing.services import start_endpoint


@pytest.fixture(scope="module")
def endpoint():
    """moto in a child process (so this process's CPU is the client's alone), its URL; dummy credentials
    in the environment, where the clients read them."""
    with dummy_credentials(), start_endpoint() as child:
        yield child.info["url"]


@pytest.fixture(scope="module")
def large(endpoint, request):
    """The module's ``LARGE`` set in bucket ``bench-large``: (Target, bytes)."""
    return upload(endpoint, "bench-large", *request.module.LARGE)


@pytest.fixture(scope="module")
def small(endpoint, request):
    """The module's ``SMALL`` set in bucket ``bench-small``: (Target, bytes)."""
    return upload(endpoint, "bench-small", *request.module.SMALL)
