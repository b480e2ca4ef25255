"""Testing code that uses reve-remix: an offline API and spec checks.

Needs the ``testing`` extra (``pip install 'reve-remix[testing]'``; the older ``mock`` extra is
enough for everything but cassettes). With it installed, pytest also gets the ``reve_remix_mock``
and ``reve_remix_cassette`` fixtures, with no import or conftest (see ``docs/testing.md``).

- :class:`MockServer`: the API on 127.0.0.1 (or as an httpx ``transport``), validating every
  request against the spec, with answers scripted by :class:`Fault`;
- :class:`ReveRemixMock`: what the ``reve_remix_mock`` fixture gives a test;
- :func:`validate_request`, :func:`validate_response`: the spec's verdict on a body;
- :mod:`reve_remix.testing.cassettes`: record a real exchange once, replay it offline.

Example::

    from reve_remix.testing import Fault, MockServer

    with MockServer() as server:
        server.enqueue(Fault(status=429, headers={"Retry-After": "1"}))
        ...  # point the client at server.base_url; the first call is rate limited
        assert len(server.requests) == 2
"""

from reve_remix.testing._fixture import ReveRemixMock
from reve_remix.testing._schema import Violation, validate_request, validate_response
from reve_remix.testing._server import Fault, MockServer, RecordedRequest
from reve_remix.testing._transport import MockTransport

__all__ = [
    "Fault",
    "MockServer",
    "MockTransport",
    "RecordedRequest",
    "ReveRemixMock",
    "Violation",
    "validate_request",
    "validate_response",
]
