"""Start-line scanners of the head parser (``cyserve._core.http.startline``).

No Python API: ``startline.pxd`` declares the C contract (``StartLine``, the method ids,
``scan_request_line``, ``scan_status_line``) that ``cyserve._core.http.parser`` calls once per head.
Python code parses heads with ``parser.parse_request_head`` / ``parse_response_head``.
"""
