"""Tests of the WebSocket core (RFC 6455 frames, RFC 7692 permessage-deflate, the role)."""
