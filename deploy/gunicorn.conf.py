"""gunicorn settings for tdm1-cds. CLI flags and TDM1_CDS_* settings override bind and workers."""

import os

bind = os.environ.get("TDM1_CDS_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("TDM1_CDS_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("TDM1_CDS_THREADS", "4"))
# A hook call has a 2 s fetch deadline; anything near this timeout is a stuck worker.
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 10000
max_requests_jitter = 500
accesslog = None  # our own JSON log line per call carries what may be logged; URLs may not
errorlog = "-"
loglevel = "warning"
