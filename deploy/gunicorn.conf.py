"""gunicorn settings for tdm1-cds, read by `tdm1-cds serve` (which sets bind and workers from
TDM1_CDS_HOST / TDM1_CDS_PORT / TDM1_CDS_WORKERS or its flags).

gthread workers: a hook call spends most of its time waiting on the client's FHIR server, so a few
threads per process keep a core busy; processes give isolation and use both cores.
"""

import gc
import os

worker_class = "gthread"
# 4: a trade measured with make bench on a quiet machine (bench/RESULTS.md, "Threads per worker").
# With complete prefetch a call is CPU-bound, and 8 threads fighting over one GIL gave a p99 of
# 2 s at 16 connections against 0.3 s with 4; without prefetch a call waits on the EHR's FHIR
# server, and 8 threads did better there (p50 336 vs 500 ms). Prefetch is the common case.
threads = int(os.environ.get("TDM1_CDS_THREADS", "4"))
# A hook call has a 2 s fetch deadline; a worker silent for 30 s is stuck and is replaced.
timeout = 30
# SIGTERM (a rolling update, a scale-down): stop accepting, finish calls in flight for up to 20 s.
# Kubernetes' terminationGracePeriodSeconds (30 s in deploy/k8s) must exceed this.
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound; jitter avoids all at once.
max_requests = 10000
max_requests_jitter = 500
accesslog = None  # our own JSON log line per call carries what may be logged; URLs may not
errorlog = "-"
loglevel = "warning"
# The heartbeat file is touched on every request: tmpfs keeps that off a container's overlay disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def post_worker_init(worker):
    """The app is loaded: move everything alive now (≈100,000 objects from Flask, SQLAlchemy,
    jsonschema, fhir.resources) out of the collector's reach. Each full collection otherwise walks
    them all again, and a FHIR prefetch allocates enough containers to trigger many: parsing a
    1.7 MB prefetch took 39 ms with them, 16 ms without (bench/RESULTS.md). They live as long as
    the worker, so nothing is lost. The echo baseline gets the same, so the ratios stay fair."""
    gc.freeze()


def child_exit(server, worker):
    """A worker is gone (crash, kill -9, recycle): its live-gauge files must not count any more.
    Counters and histograms it wrote stay in the sum, as Prometheus expects of counters."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
