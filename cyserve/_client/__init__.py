"""Private helpers of ``cyserve.client``, one job per module: ``errors`` (the client's branch of
the exception hierarchy), ``config`` (ClientLimits, ClientTimeouts), ``urls``, ``content`` and
``multipart`` (request bodies), ``upload`` (streamed uploads), ``response``, ``decompress``,
``sse``, ``cookies``, ``redirects``, ``pool``, ``connect`` (TCP, TLS, proxies) and ``util``."""
