"""Colorizing archives that outgrow one machine: ``tinct colorize SRC -o DST --ray [ADDRESS]``.

The same jobs as the single-machine command (:func:`tinct.batch.plan_colorize` for local
folders, :func:`tinct.cluster.storage.plan_uris` for ``file://``, ``s3://``, ``gs://`` ...),
run by a pool of Ray actors: each actor loads the model once
(:class:`tinct.cluster.worker.ColorizeBatch`) and colorizes the batches the driver hands it with
:func:`tinct.batch.colorize_files`, the single-machine code, so the outputs are the same.
Only file references travel between the driver and the workers, never pixels.

Modules:
    storage: local paths and filesystem URIs (pyarrow.fs, fsspec): planning, reading,
        atomic writing, stale temporaries.
    worker: what runs inside a Ray worker.
    driver: starting or joining Ray, handing out the batches, progress and ``failures.csv``.

Nothing here is imported by the single-machine path, and Ray is imported only inside
:mod:`tinct.cluster.driver` (docs/SCALE.md).
"""
