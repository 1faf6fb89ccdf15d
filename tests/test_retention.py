"""Retention policies (issue 12, SPEC §9): ages per scraper, keep_last, legal holds, precedence,
their explanation in words, their change history, and what a change would do before it is saved."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.lifecycle import archival, deletion, passes, policies, retention
from app.lifecycle.access import NotNow
from app.lifecycle.errors import BadInput
from app.lifecycle.policy import next_passes, runs_due_for_archival, runs_due_for_cleanup
from app.lifecycle.runs import load_run
from app.models import Job, PolicyChange, RetentionPolicy


def add(lc, reason="test", **fields):
    policy = policies.add_policy(
        lc.session, policies.read_fields(fields, partial=False), actor="ada", reason=reason, now=lc.now()
    )
    lc.session.commit()
    return policy


def rules(lc):
    return retention.load_rules(lc.session, lc.settings)


def due_ids(lc, query):
    return {job.id for job in lc.session.scalars(query)}


def archived(lc, make_run, **kwargs):
    job = make_run(**kwargs)
    archival.archive_run(lc, job.id, actor="scheduler")
    return load_run(lc, job.id)


# -- patterns -------------------------------------------------------------------------------------


PATTERN_CASES = [
    ("*", "", True),
    ("*", "books-toscrape", True),
    ("books-*", "books-toscrape", True),
    ("books-*", "Books-TOSCRAPE", True),  # case is ignored
    ("books-*", "quotes-books", False),
    ("*-list", "shop-list", True),
    ("shop-?", "shop-1", True),
    ("shop-?", "shop-12", False),
    ("100%", "100%", True),  # % and _ are themselves, not SQL wildcards
    ("100%", "1000", False),
    ("a_b", "a_b", True),
    ("a_b", "axb", False),
    ("back\\slash", "back\\slash", True),
    ("[ab]", "[ab]", True),  # brackets are plain characters
    ("[ab]", "a", False),
]


@pytest.mark.parametrize(("pattern", "scraper", "expected"), PATTERN_CASES)
def test_a_pattern_matches_the_same_in_python_and_in_the_database(lc, make_run, pattern, scraper, expected):
    job = make_run(scraper=scraper)
    in_sql = lc.session.scalar(select(Job.id).where(Job.id == job.id, retention.scraper_matches(pattern)))
    assert retention.pattern_matches(pattern, scraper) is expected
    assert (in_sql is not None) is expected


# -- ages, precedence -----------------------------------------------------------------------------


def test_each_scraper_ages_by_its_policy_and_the_rest_by_the_defaults(lc, make_run, clock):
    add(lc, name="books fast", scraper_pattern="books-*", archive_after_days=2, delete_after_days=5)
    books_3 = make_run(scraper="books-toscrape", days_ago=3)
    books_1 = make_run(scraper="books-toscrape", days_ago=1)
    quotes_3 = make_run(scraper="quotes", days_ago=3)  # defaults: 7 and 30 days
    quotes_8 = make_run(scraper="quotes", days_ago=8)
    assert due_ids(lc, runs_due_for_archival(rules(lc), clock.now)) == {books_3.id, quotes_8.id}
    report = passes.archive_old_runs(lc)
    assert report.outcomes["succeeded"] == 2
    assert load_run(lc, books_1.id).archived_at is None and load_run(lc, quotes_3.id).archived_at is None
    clock.advance(days=3)  # books_3 finished 6 days ago: past its 5-day delete age; quotes_8 is 11 days old
    assert due_ids(lc, runs_due_for_cleanup(rules(lc), clock.now)) == {books_3.id}
    assert passes.cleanup_old_runs(lc).outcomes["succeeded"] == 1
    assert load_run(lc, books_3.id).deleted_at is not None and load_run(lc, quotes_8.id).deleted_at is None


def test_the_highest_priority_governs_and_equal_priorities_go_to_the_oldest_policy(lc, make_run, clock):
    add(lc, name="all", scraper_pattern="*", archive_after_days=20)
    add(lc, name="books", scraper_pattern="books-*", archive_after_days=1, priority=5)
    add(lc, name="books too", scraper_pattern="books-*", archive_after_days=30, priority=5)  # a tie: newer loses
    add(lc, name="failed books", scraper_pattern="books-*", statuses=["failed"], archive_after_days=40, priority=9)
    done = make_run(scraper="books-toscrape", days_ago=2)
    failed = make_run(scraper="books-toscrape", days_ago=2, status="failed")
    other = make_run(scraper="quotes", days_ago=10)
    current = rules(lc)
    assert retention.governing(current, load_run(lc, done.id)).name == "books"
    assert retention.governing(current, load_run(lc, failed.id)).name == "failed books"
    assert retention.governing(current, load_run(lc, other.id)).name == "all"
    assert due_ids(lc, runs_due_for_archival(current, clock.now)) == {done.id}


def test_a_policy_that_never_deletes_keeps_archives_and_a_pending_run_is_governed_by_none(lc, make_run, clock):
    add(lc, name="keep archives", scraper_pattern="*", archive_after_days=1, delete_after_days=None)
    job = archived(lc, make_run, days_ago=400)
    pending = make_run(status="running", days_ago=0)
    assert passes.cleanup_old_runs(lc).outcomes["succeeded"] == 0
    assert load_run(lc, job.id).deleted_at is None
    words = retention.explain(rules(lc), load_run(lc, job.id), now=clock.now, kept=False, grace_days=7)
    assert words == retention.Explanation(
        "keep archives", "archived; never deleted by the schedule (policy 'keep archives')"
    )
    words = retention.explain(rules(lc), load_run(lc, pending.id), now=clock.now, kept=False, grace_days=7)
    assert words == retention.Explanation(None, "running: a run ages once it has finished")


# -- keep_last ------------------------------------------------------------------------------------


def test_keep_last_keeps_the_newest_successful_runs_of_each_matching_scraper(lc, make_run, clock):
    add(lc, name="keep 2", scraper_pattern="books-*", archive_after_days=1, keep_last=2)
    old, older, oldest = (make_run(scraper="books-toscrape", days_ago=d) for d in (10, 20, 30))
    newest_failed = make_run(scraper="books-toscrape", days_ago=5, status="failed")  # not successful: not counted
    other_scraper = make_run(scraper="books-other", days_ago=40)  # the newest of its own scraper
    quotes = make_run(scraper="quotes", days_ago=40)  # no policy: defaults, no keep_last
    due = due_ids(lc, runs_due_for_archival(rules(lc), clock.now))
    assert due == {oldest.id, newest_failed.id, quotes.id}
    passes.archive_old_runs(lc)
    assert all(load_run(lc, j.id).archived_at is None for j in (old, older, other_scraper))
    words = retention.explain(rules(lc), load_run(lc, old.id), now=clock.now, kept=True, grace_days=7)
    assert words == retention.Explanation("keep 2", "kept: newest 2 of books-toscrape")
    assert retention.kept_ids(lc.session, rules(lc), [old.id, older.id, oldest.id, other_scraper.id]) == {
        old.id,
        older.id,
        other_scraper.id,
    }


def test_keep_last_breaks_ties_of_the_same_start_by_id(lc, make_run, clock):
    add(lc, name="keep 1", scraper_pattern="*", archive_after_days=1, keep_last=1)
    first, second = make_run(days_ago=10), make_run(days_ago=10)
    moment = clock.now - timedelta(days=11)
    for job in (first, second):
        load_run(lc, job.id).created_at = moment
    lc.session.commit()
    kept = max(first.id, second.id)  # the greater id is the newer
    assert retention.kept_ids(lc.session, rules(lc), [first.id, second.id]) == {kept}
    assert due_ids(lc, runs_due_for_archival(rules(lc), clock.now)) == {min(first.id, second.id)}


def test_a_deleted_run_does_not_count_for_keep_last_and_a_run_without_a_scraper_is_nobodys_newest(lc, make_run, clock):
    add(lc, name="keep 1", scraper_pattern="*", archive_after_days=1, keep_last=1)
    older = archived(lc, make_run, days_ago=20)
    newer = archived(lc, make_run, days_ago=10)
    nameless = make_run(scraper="", days_ago=10)
    assert retention.kept_ids(lc.session, rules(lc), [older.id, newer.id, nameless.id]) == {newer.id}
    deletion.delete_run(lc, newer.id, actor="ada", reason="wrong data")
    assert retention.kept_ids(lc.session, rules(lc), [older.id]) == {older.id}
    assert nameless.id in due_ids(lc, runs_due_for_archival(rules(lc), clock.now))


def test_keep_last_stops_the_cleanup_too(lc, make_run, clock):
    add(lc, name="keep 1", scraper_pattern="*", archive_after_days=1, delete_after_days=2, keep_last=1)
    older = archived(lc, make_run, days_ago=20)
    newest = make_run(days_ago=10)
    archival.archive_run(lc, newest.id, actor="ada")  # archived by hand: keep_last only stops the schedule
    assert due_ids(lc, runs_due_for_cleanup(rules(lc), clock.now)) == {older.id}
    passes.cleanup_old_runs(lc)
    assert load_run(lc, newest.id).deleted_at is None and load_run(lc, older.id).deleted_at is not None


# -- legal holds ----------------------------------------------------------------------------------


def test_a_legal_hold_stops_every_deletion_but_not_archival_until_lifted(lc, make_run, clock):
    hold = add(lc, name="litigation", scraper_pattern="books-*", archive_after_days=1, legal_hold=True, priority=-5)
    add(lc, name="books", scraper_pattern="books-*", archive_after_days=1, delete_after_days=2, priority=10)
    job = make_run(days_ago=10)
    passes.archive_old_runs(lc)  # archiving loses nothing: allowed under a hold
    assert load_run(lc, job.id).archived_at is not None
    assert passes.cleanup_old_runs(lc).outcomes["succeeded"] == 0  # a lower priority hold still holds
    with pytest.raises(NotNow) as refused:
        deletion.delete_run(lc, job.id, actor="ada", reason="by hand")
    assert refused.value.code == "legal_hold" and "litigation" in refused.value.message
    with pytest.raises(NotNow):
        deletion.delete_run(lc, job.id, actor="ada", reason="by hand", strategy="hard")
    words = retention.explain(rules(lc), load_run(lc, job.id), now=clock.now, kept=False, grace_days=7)
    assert words.reason == "held: legal hold of policy 'litigation'; archived; not deleted while the hold lasts"
    policies.remove_policy(lc.session, hold, actor="ada", reason="case closed", now=clock.now)
    lc.session.commit()
    assert passes.cleanup_old_runs(lc).outcomes["succeeded"] == 1


def test_a_hold_placed_on_a_run_in_the_trash_stops_its_purge(lc, make_run, clock):
    job = archived(lc, make_run, days_ago=40)
    deletion.delete_run(lc, job.id, actor="ada", reason="old")
    add(lc, name="hold", scraper_pattern="*", archive_after_days=1, legal_hold=True)
    clock.advance(days=30)
    passes.cleanup_old_runs(lc)
    assert load_run(lc, job.id).purged_at is None
    assert deletion.purge_run(lc, job.id, actor="ada", reason="by hand") == "skipped"
    assert load_run(lc, job.id).purged_at is None


# -- managing policies ----------------------------------------------------------------------------


def test_every_change_is_recorded_with_its_actor_reason_and_the_policy_before_and_after(lc, clock):
    policy = add(lc, reason="compliance: 90 days", name="books", scraper_pattern="books-*", archive_after_days=7)
    policies.set_policy(
        lc.session,
        policy,
        policies.read_fields({"keep_last": "3"}, partial=True),
        actor="bo",
        reason="keep 3",
        now=clock.now,
    )
    lc.session.commit()
    policies.remove_policy(lc.session, policy, actor="cy", reason="not needed", now=clock.now)
    lc.session.commit()
    changes = lc.session.scalars(select(PolicyChange).order_by(PolicyChange.id)).all()
    assert [(c.action, c.actor, c.reason) for c in changes] == [
        ("add", "ada", "compliance: 90 days"),
        ("set", "bo", "keep 3"),
        ("remove", "cy", "not needed"),
    ]
    assert changes[0].before is None and changes[0].after["archive_after_days"] == 7
    assert changes[1].before["keep_last"] == 0 and changes[1].after["keep_last"] == 3
    assert changes[2].after is None and changes[2].policy_name == "books"
    assert lc.session.scalars(select(RetentionPolicy)).all() == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scraper_pattern": "*", "archive_after_days": 1}, "needs name"),
        ({"name": "x", "scraper_pattern": "*", "archive_after_days": -1}, "between 0"),
        ({"name": "x", "scraper_pattern": "*", "archive_after_days": 5, "delete_after_days": 5}, "more than"),
        ({"name": "x", "scraper_pattern": "*", "archive_after_days": "soon"}, "whole number"),
        ({"name": "x", "scraper_pattern": "*", "archive_after_days": True}, "whole number"),
        ({"name": "x", "scraper_pattern": "*", "archive_after_days": 1, "statuses": ["running"]}, "finished ones"),
        ({"name": "x", "scraper_pattern": "*", "archive_after_days": 1, "legal_hold": "maybe"}, "true or false"),
        ({"name": "x", "scraper_pattern": "*", "archive_after_days": 1, "priority": 10**6}, "between"),
        ({"name": "x\x00", "scraper_pattern": "*", "archive_after_days": 1}, "zero-width characters"),
        ({"name": "x" * 101, "scraper_pattern": "*", "archive_after_days": 1}, "at most 100"),
        ({"name": "x", "scraper_pattern": "*", "archive_after_days": 1, "colour": "red"}, "unknown policy fields"),
        ({"name": "x", "scraper_pattern": "*", "archive_after_days": 1, "keep_after_access_days": 0}, "between 1"),
    ],
)
def test_a_bad_policy_is_refused_with_a_reason_and_nothing_is_saved(lc, fields, message):
    with pytest.raises(BadInput, match=message):
        add(lc, **fields)
    lc.session.rollback()
    assert lc.session.scalars(select(RetentionPolicy)).all() == []


def test_a_name_is_taken_once_and_a_reason_is_required(lc, clock):
    add(lc, name="books", scraper_pattern="*", archive_after_days=1)
    with pytest.raises(policies.PolicyNameTaken):
        add(lc, name="books", scraper_pattern="x", archive_after_days=1)
    lc.session.rollback()
    with pytest.raises(BadInput, match="reason"):
        add(lc, reason=" ", name="other", scraper_pattern="*", archive_after_days=1)


# -- what a change would do -----------------------------------------------------------------------


def test_the_preview_counts_runs_and_bytes_per_scraper_and_the_change_from_now(lc, make_run, clock):
    books = [make_run(scraper="books", days_ago=d) for d in (3, 4)]
    quotes = make_run(scraper="quotes", days_ago=9)  # due under the defaults already
    for job, size in zip((*books, quotes), (100, 200, 400), strict=True):
        load_run(lc, job.id).size_bytes = size
    lc.session.commit()
    now_due = next_passes(lc.session, rules(lc), clock.now)
    assert now_due["archive"] == {"runs": 1, "bytes": 400} and now_due["delete"] == {"runs": 0, "bytes": 0}
    fields = policies.read_fields({"name": "books", "scraper_pattern": "books", "archive_after_days": 2}, partial=False)
    proposed = policies.proposed_rules(lc.session, lc.settings, fields)
    effect = policies.preview(lc.session, lc.settings, proposed, clock.now)
    assert effect["archive"] == {"runs": 3, "bytes": 700}
    assert effect["change"]["archive"] == {"runs": 2, "bytes": 300}
    books_change = {"archive_runs": 2, "archive_bytes": 300, "delete_runs": 0, "delete_bytes": 0}
    no_change = {"archive_runs": 0, "archive_bytes": 0, "delete_runs": 0, "delete_bytes": 0}
    assert effect["by_scraper"] == [
        {"scraper": "books", **books_change, "change": books_change},
        {
            "scraper": "quotes",
            "archive_runs": 1,
            "archive_bytes": 400,
            "delete_runs": 0,
            "delete_bytes": 0,
            "change": no_change,
        },
    ]
    assert lc.session.scalars(select(RetentionPolicy)).all() == []  # nothing saved


# -- keep_after_access_days -----------------------------------------------------------------------


def test_a_run_a_person_used_recently_is_not_deleted_and_says_so(lc, make_run, clock):
    from app.lifecycle.accesses import record_access

    add(lc, name="used", scraper_pattern="*", archive_after_days=1, delete_after_days=2, keep_after_access_days=5)
    used = archived(lc, make_run, days_ago=30)
    unused = archived(lc, make_run, days_ago=30)
    record_access(lc.session, used, "downloaded", by="ada", by_id=used.created_by, now=clock.now - timedelta(days=3))
    assert due_ids(lc, runs_due_for_cleanup(rules(lc), clock.now)) == {unused.id}
    [words] = retention.explain_runs(lc.session, rules(lc), [load_run(lc, used.id)], now=clock.now, grace_days=7)
    assert words.reason == "kept: downloaded 3 days ago by ada (kept 5 days after a use)"
    clock.advance(days=3)  # six days since the use: no longer kept
    assert due_ids(lc, runs_due_for_cleanup(rules(lc), clock.now)) == {used.id, unused.id}


def test_uses_are_counted_once_a_day_per_run_not_per_request(lc, make_run, clock):
    from app.lifecycle import accesses
    from app.models import RunAccess

    job = make_run(days_ago=1)
    owner = uuid.uuid4()
    load_run(lc, job.id).created_by = None
    lc.session.commit()
    for _ in range(50):
        accesses.record_access(lc.session, job, "opened", by="bo", by_id=owner, now=clock.now)
    [row] = lc.session.scalars(select(RunAccess)).all()
    assert (row.count, row.last_by, row.last_kind, row.by_owner) == (1, "bo", "opened", False)
    accesses._WRITTEN.forget()  # another process, or a minute later
    accesses.record_access(lc.session, job, "restored", by="bo", by_id=owner, now=clock.now)
    lc.session.expire_all()
    [row] = lc.session.scalars(select(RunAccess)).all()
    assert (row.count, row.last_kind) == (2, "restored")
    with pytest.raises(ValueError):
        accesses.record_access(lc.session, job, "looked at", by="bo", by_id=owner, now=clock.now)


def test_a_name_or_pattern_with_invisible_characters_is_refused(lc):
    for fields in (
        {"name": "books\u202e", "scraper_pattern": "*", "archive_after_days": 1},
        {"name": "books", "scraper_pattern": "books\u200b-*", "archive_after_days": 1},
    ):
        with pytest.raises(BadInput, match="bidi or zero-width"):
            add(lc, **fields)


def test_the_deletion_date_waits_for_a_use_as_the_cleanup_does(lc, make_run, clock):
    from datetime import UTC, datetime, time

    from app.lifecycle import notices
    from app.lifecycle.accesses import record_access

    add(lc, name="used", scraper_pattern="*", archive_after_days=1, delete_after_days=2, keep_after_access_days=1)
    used = archived(lc, make_run, days_ago=30)
    yesterday = (clock.now - timedelta(days=1)).date()
    record_access(lc.session, used, "opened", by="ada", by_id=used.created_by, now=clock.now - timedelta(days=1))
    lc.session.commit()
    job = load_run(lc, used.id)
    # Used yesterday and kept while used within a day: the cleanup may take it from tomorrow, 00:00 UTC.
    tomorrow = datetime.combine(yesterday + timedelta(days=2), time.min, UTC)
    assert retention.deletion_due(rules(lc), job, clock.now, last_used=yesterday) == tomorrow
    assert retention.deletion_due(rules(lc), job, clock.now) == clock.now  # the use unknown: due now
    for moment, kept in ((tomorrow - timedelta(seconds=1), True), (tomorrow, False)):
        assert (used.id not in due_ids(lc, runs_due_for_cleanup(rules(lc), moment))) is kept
    # The notices say the same day: the first cleanup pass from tomorrow.
    [(announced, deletes_at)] = notices.runs_to_announce(lc, clock.now)
    assert announced.id == used.id and deletes_at >= tomorrow and deletes_at < tomorrow + timedelta(days=1)
