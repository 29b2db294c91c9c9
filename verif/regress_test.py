"""The one test of ``cimforge regress``: a bench run per (block, simulator, seed), made into
items by the plugin :mod:`cimforge.verif.regress`."""

from cimforge.verif.regress import run_job


def test_bench(job, request):
    run_job(job, request.config)
