"""RFC 6455 (WebSocket) and RFC 7692 (permessage-deflate) in Cython: ``frames`` (the codec both
roles share), ``deflate`` (negotiation and bounded inflation), ``role`` (``WebSocketRole`` on a
``Stream``)."""
