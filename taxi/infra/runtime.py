"""Process-level tuning shared by the long-running processes (web, worker)."""

import gc

# Allocations (net of frees) between young-generation collections; CPython's
# default is 700. Raising it makes the collector run far less often on a
# server whose objects mostly die young (frames, messages, rows).
GC_THRESHOLDS = (50_000, 50, 100)


def settle_gc() -> None:
    """Move everything alive after start-up out of the collector's sight and
    collect less often.

    A full collection walks every tracked object. A web process holds about
    160,000 after start-up (Django, the URL map, serializers) and a million
    with 5,000 sockets open, so its full collections took 73 ms idle and
    600-780 ms loaded: those pauses were the dispatch latency's p99
    (BENCHMARKS.md, "Findings"). `gc.freeze()` puts the start-up objects in
    the permanent generation, which collections skip; they live as long as
    the process anyway. The cost is memory held by any frozen cycle that
    later becomes garbage, which start-up objects almost never are.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
