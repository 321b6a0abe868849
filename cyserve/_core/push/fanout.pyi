"""The group fan-out's per-member loop, compiled (``cyserve._core.push.fanout``); the hub reaches
it as ``cyserve.push.groups.fanout``."""
from typing import Iterable

from cyserve.config import PushLimits
from cyserve.push.session import Message, Session


def fanout(sessions: Iterable[Session], message: Message, exclude: frozenset[str] | None,
           limits: PushLimits) -> None:
    """``message`` to each session but those whose ``client_id`` is in ``exclude``
    (docs/push-protocol.md §12), in the iteration order of ``sessions`` (copied first: a push
    may close a slow member and change the collection).  Per member: its next sequence number
    and one reference in its history, bounded by ``resume_history_count`` and
    ``resume_history_bytes`` (§8.1, §8.4); for an attached session, the template of its
    framing and codec (built once per kind by ``Message.template``) written as head + shared
    body when nothing is held back and the queue stays within ``queue_bytes``, else
    ``Connection.push`` (a GAP for a template it cannot receive, held pushes first, the
    slow-consumer policy, §8.3 and §8.6)."""
