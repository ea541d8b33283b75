"""Archive batch: the same analysis as ``jcs-viewer analyze`` on many studies, in-process or on Ray.

- :mod:`~jcs_viewer.batch.fingerprint`: study keys, input fingerprints and the model version a result depends on.
- :mod:`~jcs_viewer.batch.worker`: one study, start to finish (runs in a Ray worker or in this process).
- :mod:`~jcs_viewer.batch.summary`: the per-study row, ``summary.csv``/``summary.parquet`` and the done-records.
- :mod:`~jcs_viewer.batch.engine`: the scheduler (Ray tasks or a plain loop), resume and Ctrl+C.

Ray is optional (``pip install 'jcs-viewer[cluster]'``) and imported only when a run needs it.
"""
