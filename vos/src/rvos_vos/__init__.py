"""AOT / DeAOT key-frame propagation of run folders (see vos/README.md).

Networks are stateless (``rvos_vos.aot``, ``rvos_vos.deaot``); a ``Session`` owns one view's memory;
``MultiViewTracker`` + ``bidirectional`` are the competition's procedure (``lockstep``: several
expressions of a video at once, each frame encoded once per pass); ``Propagator`` holds
what differs between the two code bases (registered under ``rvos.propagators``); ``python -m rvos_vos.propagate`` runs it on a run folder.
The transformers trackers (SAM 2.1, SAM 3 tracker, EdgeTAM) are ``rvos_vos.trackers.TrackerFamily``
entries of the same group, run by ``rvos_vos.tracking`` and ``rvos_vos.propagate_trackers`` (not
imported here: they load transformers).
"""

from rvos_vos.procedure import MultiViewTracker, Track, bidirectional, lockstep
from rvos_vos.propagators import Propagator, load_propagator
from rvos_vos.session import MemoryPolicy, Session
from rvos_vos.views import ViewConfig

__all__ = [
    "MemoryPolicy",
    "MultiViewTracker",
    "Propagator",
    "Session",
    "Track",
    "ViewConfig",
    "bidirectional",
    "load_propagator",
    "lockstep",
]
