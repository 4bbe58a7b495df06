"""``--runner dask``: a local dask.distributed cluster of ``--workers`` processes on 127.0.0.1 for the
length of the run, or none when ``--dask-address`` names a running scheduler."""
from __future__ import annotations

import logging
from contextlib import contextmanager

from clipcurate.pipeline.cli.run.config import is_dask


@contextmanager
def dask_cluster(args):
    """Yields the scheduler address to give Beam's DaskRunner (None for every other runner)."""
    if not is_dask(args.runner):
        yield None
        return
    if args.dask_address:
        yield args.dask_address
        return
    from distributed import LocalCluster

    # worker processes (not threads): one Beam task at a time each, like a cluster's workers
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny"):
        logging.getLogger(name).setLevel(logging.WARNING)
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.WARNING)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()
