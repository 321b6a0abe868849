"""The reading half of a client connection (base of ``cyserve._core.client.HTTPClientCore``)."""
from cyserve._core.clientstate import ClientState
from cyserve._core.reqsender import RequestSender

class ResponseReader(RequestSender):
    """Response heads and bodies out of the receive buffer; reading pauses while the streamed
    body's reader is behind."""

    response_bytes: int
    def __init__(self, state: ClientState, *args: object) -> None: ...
    # asyncio protocol callbacks
    def get_buffer(self, sizehint: int) -> memoryview: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    @property
    def reading_paused(self) -> bool:
        """Reading is paused because the streamed body's reader is behind."""
    @property
    def response_complete(self) -> bool: ...
