"""Video-MME and LongVideoBench evaluation: loaders, lmms-eval prompts and parsers, a resumable
sharded runner, metrics, reports and an lmms-eval model plugin.

Entry points: ``vidsieve eval ...`` / ``python -m vidsieve.eval ...`` and
:func:`vidsieve.eval.runner.run_questions`.
"""
