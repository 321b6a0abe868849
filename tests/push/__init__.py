"""Tests of TCP long-connection push (docs/push-protocol.md): the frame codec first."""
