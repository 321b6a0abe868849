"""``timeout=<number>`` sets the per-phase timeouts and keeps the total's default; ``None``
disables every timeout.  Checked as values: waiting the 300 s total proves nothing more."""
from __future__ import annotations

from cyserve.client import Client, ClientTimeouts
from cyserve.config import to_timeouts


def test_a_number_sets_connect_read_write_and_pool_and_keeps_the_default_total():
    default_total = ClientTimeouts().total_s
    assert default_total is not None and default_total > 0
    assert to_timeouts(5) == ClientTimeouts(connect_s=5.0, read_s=5.0, write_s=5.0, pool_s=5.0,
                                            total_s=default_total)
    assert to_timeouts(2.5).total_s == default_total
    assert Client(timeout=5).timeouts.total_s == default_total


def test_none_disables_every_timeout_the_total_too():
    assert to_timeouts(None) == ClientTimeouts(None, None, None, None, None)
    assert Client(timeout=None).timeouts.total_s is None


def test_a_client_timeouts_object_is_taken_as_given():
    timeouts = ClientTimeouts(read_s=1.0, total_s=None)
    assert to_timeouts(timeouts) is timeouts
