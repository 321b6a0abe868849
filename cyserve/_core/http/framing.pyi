"""Message body framing for both roles (``BodyReader``, ``BodyWriter``); C face only, see
``framing.pxd``."""
