"""gunicorn settings for tdm1-cds, read by `tdm1-cds serve` (which sets bind and workers from
TDM1_CDS_HOST / TDM1_CDS_PORT / TDM1_CDS_WORKERS or its flags).

gthread workers: a hook call spends most of its time waiting on the client's FHIR server, so a few
threads per process keep a core busy; processes give isolation and use both cores.
"""

import ctypes
import gc
import logging
import os
import re

worker_class = "gthread"
# 16, measured with make bench (bench/RESULTS.md, "Threads per worker"). A call without prefetch
# holds its thread while its FHIR queries wait (~110 ms): with 16 connections and 2 workers, 4
# threads queued them (no-prefetch p50 340 ms), 8 still did (191 ms), 16 did not (135-143 ms). Once
# a prefetched call cost ~2.5 ms of CPU instead of ~8, more threads no longer hurt its tail (the
# GIL convoy that made 8 threads worse than 4 before): workload 1 had its best throughput and a p99
# within 2x the echo's with 16.
threads = int(os.environ.get("TDM1_CDS_THREADS", "16"))
# A hook call has a 2 s fetch deadline; a worker silent for 30 s is stuck and is replaced.
timeout = 30
# SIGTERM (a rolling update, a scale-down): stop accepting, finish calls in flight for up to 20 s.
# Kubernetes' terminationGracePeriodSeconds (30 s in deploy/k8s) must exceed this.
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound; jitter avoids all at once.
# TDM1_CDS_MAX_REQUESTS=0 turns recycling off: make soak does, since a recycled worker hides a leak.
max_requests = int(os.environ.get("TDM1_CDS_MAX_REQUESTS", "10000"))
max_requests_jitter = 500 if max_requests else 0
accesslog = None  # our own JSON log line per call carries what may be logged; URLs may not
errorlog = "-"
loglevel = "warning"
# The heartbeat file is touched on every request: tmpfs keeps that off a container's overlay disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def gc_thresholds(value: str) -> tuple[int, int, int]:
    """TDM1_CDS_GC_THRESHOLDS: three positive integers, "50000,20,10"; anything else stops the start
    with a message that names the variable (a bad value must not pass silently)."""
    parts = value.split(",")
    try:
        numbers = tuple(int(part) for part in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != 3 or min(numbers) < 1:
        raise SystemExit(
            f"TDM1_CDS_GC_THRESHOLDS={value!r}: expected three positive integers, such as 50000,20,10"
        )
    return numbers  # type: ignore[return-value]


# The collector's generation thresholds (CPython's default: 700, 10, 10). Almost nothing a hook call
# allocates is cyclic, so the default's collections, every 700 net allocations, found nothing to free
# while a prefetch parse triggered hundreds, each walking the objects of the other calls in flight
# too: with 50,000, the 2,000-resource workload gained 1.2 to 1.6x under load and the small ones did
# not change (bench/RESULTS.md, "Garbage collector"). Cycles are still collected, less often: the
# memory phase and the soak check that nothing grows. "700,10,10" puts CPython's back.
GC_THRESHOLDS = gc_thresholds(os.environ.get("TDM1_CDS_GC_THRESHOLDS", "50000,20,10"))


# glibc malloc arenas per worker. glibc gives each of a worker's 16 threads its own arena, each
# keeping its own high-water mark: a 10-minute soak grew workers 10.5% without a limit and 5.5% with
# 2, flat after the first minute (bench/RESULTS.md, "Soak"). The image sets MALLOC_ARENA_MAX=2;
# this puts the same limit on every other way of starting the service (make run, a systemd unit,
# the bench), where nobody sets the variable.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h


# gunicorn's own error log, at the "warning" level above, quotes what it could not parse: "Invalid
# request from ip=…: Invalid HTTP request line: 'GET /x?patient=123 …'", or a header line with its
# value ("Invalid HTTP Header: 'Authorization Bearer eyJ…'"). The kind of problem stays; the quoted
# part goes. A request that fails in the app is logged with its URI: the path stays, the query goes.
_INVALID_REQUEST = "Invalid request from ip="
_QUOTED = re.compile(r"""[:'"]""")


class WithholdRequestData(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted: the handler reports it, as before
            return True
        if message.startswith(_INVALID_REQUEST):
            where, _, error = message.partition(": ")
            kind = _QUOTED.split(error, maxsplit=1)[0].strip()[:80]
            withheld = " (detail withheld)" if kind != error else ""
            record.msg, record.args = f"{where}: {kind}{withheld}", ()
        elif message.startswith("Error handling request") and isinstance(record.args, tuple):
            record.args = tuple(a.split("?", 1)[0] if isinstance(a, str) else a for a in record.args)
        return True


WITHHOLD_REQUEST_DATA = WithholdRequestData()


def on_starting(server):
    """In the master, before any worker is forked: the workers inherit the filtered logger."""
    logging.getLogger("gunicorn.error").addFilter(WITHHOLD_REQUEST_DATA)


def limit_malloc_arenas() -> bool:
    """mallopt(M_ARENA_MAX) unless MALLOC_ARENA_MAX is set (glibc has read it already, and an
    operator's choice wins). False where there is no glibc mallopt (musl's ignores it, macOS has
    none): nothing else changes there."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(_M_ARENA_MAX, MALLOC_ARENAS) == 1


def post_fork(server, worker):
    """In the new worker, before its threads exist: arenas are created as threads first allocate."""
    limit_malloc_arenas()


def post_worker_init(worker):
    """The app is loaded: move everything alive now (≈100,000 objects from Flask, SQLAlchemy,
    jsonschema, fhir.resources) out of the collector's reach. Each full collection otherwise walks
    them all again, and a FHIR prefetch allocates enough containers to trigger many: parsing a
    1.7 MB prefetch took 39 ms with them, 16 ms without (bench/RESULTS.md). They live as long as
    the worker, so nothing is lost. The echo baseline gets the same, so the ratios stay fair."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def worker_exit(server, worker):
    """In the worker, as it stops (SIGTERM, a max_requests recycle): cards still waiting for the
    database live in its memory only; write them now, or count them as dropped (Store.drain)."""
    store = getattr(getattr(worker, "wsgi", None), "config", {}).get("STORE")
    if store is not None:
        store.drain()


def child_exit(server, worker):
    """A worker is gone (crash, kill -9, recycle): its live-gauge files must not count any more.
    Counters and histograms it wrote stay in the sum, as Prometheus expects of counters."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
