"""The runs lists' actions: one click on a row, or one task for every selected row.

A thin door into ``app.lifecycle.bulk``: the rules are ``app.lifecycle.access``'s, asked per run.
Selected rows post one form: the runs the user may act on go into one RQ task, the others are
listed with the reason at once; the progress page follows each run (HTMX polls it; without
JavaScript it refreshes itself). A row's own buttons are the single actions (``app.web.rows``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import redirect, render_template, request, url_for

from app import tasks
from app.extensions import db, settings
from app.lifecycle import bulk, queries, retention
from app.lifecycle.events import state_token
from app.models import utcnow
from app.web import bp, error_page, web_user
from app.web.actions import keep_until
from app.web.rows import list_tier


def _ask() -> bulk.BulkAsk:
    form = request.form
    action = form.get("action", "")
    until = keep_until(form.get("retain_until", "").strip()) if action == "extend" else None
    return bulk.checked(
        bulk.BulkAsk(
            action=action,
            reason=queries.reason_text(form.get("reason"), required=False),
            strategy=(form.get("strategy") or None) if action == "delete" else None,
            retain_until=until,
            keep_forever=action == "extend" and form.get("keep_forever") == "yes",
        ),
        confirmed=form.get("confirm") == "yes",
    )


@bp.post("/runs/bulk")
def bulk_action() -> Any:
    """Start one task for the selected runs the user may act on; list the others with why not."""
    user = web_user()
    ask = _ask()
    ids = bulk.run_ids(request.form.getlist("job_id"))
    s = settings()
    accepted, refused = bulk.sort_out(
        db.session,
        user,
        ask,
        ids,
        rules=retention.cached_rules(db.session, s),
        now=utcnow(),
        grace_days=s.delete_grace_days,
        configured_strategy=s.deletion_strategy,
    )
    back = list_tier(request.form.get("tier")) or "active"
    if not accepted:
        return render_template(
            "bulk.html",
            task=None,
            action=ask.action,
            refused=refused,
            labels=bulk.LABELS,
            titles=bulk.TITLES,
            tier=back,
        ), 409
    runs = [[str(job.id), state_token(job)] for job in accepted]
    task = tasks.enqueue(
        tasks.bulk_runs,
        ask.as_dict(),
        runs,
        user.username,
        timeout="batch",
        owner=str(user.id),
        description=f"{ask.action} {len(runs)} runs",
        meta={
            "action": ask.action,
            "runs": [{"job_id": str(job.id), "name": job.name, "status": "queued"} for job in accepted],
            "refused": refused,
        },
    )
    return redirect(url_for("web.bulk_progress", task_id=task.id, tier=back), 303)


@bp.get("/runs/bulk/<task_id>")
def bulk_progress(task_id: str) -> Any:
    """A bulk task's progress per run (HTMX polls the fragment while it runs)."""
    if not tasks.TASK_ID.match(task_id):
        return error_page(400, "a task id has only letters, digits, '_' and '-'")
    state = tasks.task_state(task_id, web_user())
    if state is None or "runs" not in state:
        return error_page(404, "There is no such bulk action, or it is not yours to see.")
    template = "_bulk.html" if request.headers.get("HX-Request") else "bulk.html"
    return render_template(
        template,
        task=state,
        action=state.get("action"),
        refused=state.get("refused", []),
        labels=bulk.LABELS,
        titles=bulk.TITLES,
        tier=list_tier(request.args.get("tier")) or "active",
        now=datetime.now(UTC),
    )
