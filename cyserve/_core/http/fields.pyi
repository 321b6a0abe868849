"""Field-line walk of the head parser (``cyserve._core.http.fields``).

No Python API: ``fields.pxd`` declares the C contract (``FieldLines``, ``scan_fields``) that
``cyserve._core.http.parser`` calls once per head.  Python code reads fields from a parsed ``Head``
(``header_items``, ``get``, ``get_all``).
"""
