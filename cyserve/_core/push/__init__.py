"""TCP long-connection push in Cython: ``frames`` (the cyserve-push/1 codec of
``docs/push-protocol.md``: binary and JSON-lines framings on TCP, their two WebSocket forms, and the
shared-body encoding of a group publish)."""
