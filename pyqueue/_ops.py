"""The one import point of every queue and job operation, each written once as a plan.

``Queue``, ``AsyncQueue``, ``Job`` and ``Worker`` call these and run the
plans with their own client; nothing here does I/O itself. The operations
live in ``_clock`` (the server clock), ``_ops_add`` (adding jobs),
``_ops_read`` (reading), ``_ops_admin`` (managing) and ``_ops_wait``
(waiting for a job), and are re-exported here.
"""

from __future__ import annotations

from ._clock import CLOCK_RESYNC_SECONDS as CLOCK_RESYNC_SECONDS
from ._clock import VERSION as VERSION
from ._clock import Clock as Clock
from ._ops_add import add_command as add_command
from ._ops_add import add_jobs as add_jobs
from ._ops_admin import BATCH as BATCH
from ._ops_admin import clean as clean
from ._ops_admin import promote_all as promote_all
from ._ops_admin import promote_due as promote_due
from ._ops_admin import repeat_until_done as repeat_until_done
from ._ops_admin import retry_all as retry_all
from ._ops_admin import simple as simple
from ._ops_read import ALL_STATES as ALL_STATES
from ._ops_read import DEFAULT_COUNT_STATES as DEFAULT_COUNT_STATES
from ._ops_read import decode_json as decode_json
from ._ops_read import get_counts as get_counts
from ._ops_read import get_group_counts as get_group_counts
from ._ops_read import get_job_hash as get_job_hash
from ._ops_read import get_jobs as get_jobs
from ._ops_read import get_logs as get_logs
from ._ops_read import get_metrics as get_metrics
from ._ops_read import get_state as get_state
from ._ops_read import is_paused as is_paused
from ._ops_read import normalize_state as normalize_state
from ._ops_wait import wait_finished as wait_finished
