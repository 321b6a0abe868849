"""Tests of the Cython core that need no sockets."""
