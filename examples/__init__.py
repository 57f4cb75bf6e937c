"""Runnable pyqueue examples (see docs/). Each reads the Redis URL from $REDIS_URL."""
