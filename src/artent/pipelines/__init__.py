"""Pipelines of many training runs: the study behind ``artent demo`` (``study``, its options in
``study_config`` and its analysis stages in ``stages``) and the grids of ``artent sweep``
(``sweep``, one point in ``points``, the worker processes and Ray in ``sweep_workers``), sharing
the resumable multi-run folder of ``folders``.
"""
