"""Run one lifecycle operation in a process of its own and SIGKILL it at a named step.

Used by tests/test_faults.py: ``python -m tests.fault_runner OPERATION JOB_ID STEP``. Exits 3 if
the step was never reached (the test then fails: the fault was not injected).
"""

import os
import signal
import sys
import uuid

from app import create_app
from app.extensions import lifecycle
from app.lifecycle import archival, deletion

OPERATIONS = {
    "archive": lambda lc, job_id: archival.archive_run(lc, job_id, actor="scheduler"),
    "restore": lambda lc, job_id: archival.restore_run(lc, job_id, actor="ada"),
    "expire_restore": lambda lc, job_id: archival.expire_restore(lc, job_id, actor="scheduler"),
    "soft_delete": lambda lc, job_id: deletion.delete_run(lc, job_id, actor="ada", reason="r", strategy="soft"),
    "hard_delete": lambda lc, job_id: deletion.delete_run(lc, job_id, actor="ada", reason="r", strategy="hard"),
    "purge": lambda lc, job_id: deletion.purge_run(lc, job_id, actor="scheduler"),
    "undelete": lambda lc, job_id: deletion.undelete_run(lc, job_id, actor="ada"),
}


def main() -> int:
    operation, job_id, step = sys.argv[1:4]

    def fault(name: str) -> None:
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    app = create_app()
    with app.app_context():
        OPERATIONS[operation](lifecycle(fault=fault, lock_ttl=2), uuid.UUID(job_id))
    return 3


if __name__ == "__main__":
    sys.exit(main())
