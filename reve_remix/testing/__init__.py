"""An offline Reve Remix API for tests: what stripe-mock is to Stripe's SDKs.

Needs the ``mock`` extra (``pip install 'reve-remix[mock]'``) for request validation.

Example::

    from reve_remix.testing import Fault, MockServer

    with MockServer() as server:
        server.enqueue(Fault(status=429, headers={"Retry-After": "1"}))
        ...  # point the client at server.base_url; the first call is rate limited
        assert len(server.requests) == 2
"""

from reve_remix.testing._server import Fault, MockServer, RecordedRequest

__all__ = ["Fault", "MockServer", "RecordedRequest"]
