"""Error codes of the head walks (``cyserve._core.errcode``).

No Python API: ``errcode.pxd`` declares the ``HeadError`` codes the C loops return and
``raise_error``, which turns one into the ``cyserve.errors.ProtocolError`` (with the status to
answer) that ``HeadScanner.feed`` and ``parse_request_head``/``parse_response_head`` raise.
"""
