"""pyqueue's benchmark suite: the same workloads through pyqueue and its peers
(BullMQ Node, the official Python bullmq, RQ, arq, SAQ, Dramatiq, Celery) on
one Redis, in one run. Run ``python -m benchmarks``; see README.md.
"""
