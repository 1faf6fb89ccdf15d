"""``flask policies``: list in precedence order, add, set and remove with an actor and a reason,
``--dry-run`` saying what a change would do in the next passes, and bad input said plainly."""

import getpass

import pytest

from tests.support import policy_changes as changes
from tests.support import saved_policies as saved
from tests.support import sized_run

ME = f"cli:{getpass.getuser()}"


@pytest.fixture
def cli(app, lc):
    runner = app.test_cli_runner()

    def invoke(*args):
        lc.session.commit()  # what the test wrote is there for the command; what the command wrote, read afresh
        result = runner.invoke(args=["policies", *args], catch_exceptions=False)
        lc.session.expire_all()
        return result

    return invoke


BOOKS = ("--name", "books", "--scraper-pattern", "books-*", "--archive-after-days", "2")


def test_add_saves_every_field_and_records_the_os_user_and_the_reason(cli, lc):
    result = cli(
        "add",
        *BOOKS,
        "--statuses",
        "failed,completed",
        "--delete-after-days",
        "never",
        "--keep-last",
        "3",
        "--legal-hold",
        "--priority",
        "5",
        "--reason",
        "books change fast",
    )
    assert result.exit_code == 0, result.output
    [policy] = saved(lc)
    assert (policy.name, policy.scraper_pattern, policy.statuses) == ("books", "books-*", ["completed", "failed"])
    assert (policy.archive_after_days, policy.delete_after_days, policy.keep_last) == (2, None, 3)
    assert (policy.legal_hold, policy.priority, policy.created_by) == (True, 5, ME)
    assert result.stdout.startswith(f"added policy {policy.id}: {policy.id}\tbooks\tbooks-*\tcompleted,failed\t")
    [change] = changes(lc)
    assert (change.action, change.actor, change.reason, change.before) == ("add", ME, "books change fast", None)
    assert change.after["keep_last"] == 3


def test_list_prints_one_line_per_policy_in_order_of_precedence(cli, lc):
    for name, priority in (("low", "0"), ("high", "10"), ("low too", "0")):
        args = ("--name", name, "--scraper-pattern", "*", "--archive-after-days", "3", "--priority", priority)
        assert cli("add", *args, "--delete-after-days", "9", "--reason", "r").exit_code == 0
    ids = {policy.name: policy.id for policy in saved(lc)}
    result = cli("list")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{ids['high']}\thigh\t*\tall finished\tarchive after 3 d\tdelete after 9 d\tkeep last 0\t"
        "no keep after access\tno hold\tpriority 10",
        f"{ids['low']}\tlow\t*\tall finished\tarchive after 3 d\tdelete after 9 d\tkeep last 0\t"
        "no keep after access\tno hold\tpriority 0",
        f"{ids['low too']}\tlow too\t*\tall finished\tarchive after 3 d\tdelete after 9 d\tkeep last 0\t"
        "no keep after access\tno hold\tpriority 0",
    ]
    assert "3 policies; runs no policy matches are archived after 7 d and deleted after 30 d" in result.stderr


def test_a_dry_run_add_prints_the_next_passes_per_scraper_and_saves_nothing(cli, lc, make_run):
    sized_run(lc, make_run, 100, scraper="books-toscrape", days_ago=3)
    sized_run(lc, make_run, 200, scraper="books-toscrape", days_ago=4)
    sized_run(lc, make_run, 400, scraper="quotes", days_ago=9)  # due under the defaults already
    result = cli("add", *BOOKS, "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "would archive 3 runs, 700 B in the next passes (+2 runs, +300 B from now)",
        "would delete 0 runs, 0 B in the next passes (±0, ±0 from now)",
        "  books-toscrape\tarchive 2 runs, 300 B\tdelete 0 runs, 0 B",
        "  quotes\tarchive 1 run, 400 B\tdelete 0 runs, 0 B",
    ]
    assert "nothing saved" in result.stderr
    assert saved(lc) == [] and changes(lc) == []


def test_set_changes_only_the_options_given_and_its_dry_run_saves_nothing(cli, lc, make_run):
    for days in (3, 4, 5):  # the newest two are kept
        sized_run(lc, make_run, 1000, scraper="books-toscrape", days_ago=days)
    assert cli("add", *BOOKS, "--keep-last", "2", "--legal-hold", "--reason", "start").exit_code == 0
    [policy] = saved(lc)
    slower = cli("set", str(policy.id), "--archive-after-days", "30", "--dry-run")
    assert slower.exit_code == 0, slower.output
    assert slower.stdout.splitlines()[0] == "would archive 0 runs, 0 B in the next passes (-1 run, -1000 B from now)"
    assert saved(lc)[0].archive_after_days == 2 and len(changes(lc)) == 1
    result = cli("set", str(policy.id), "--no-legal-hold", "--priority", "-3", "--reason", "hold lifted")
    assert result.exit_code == 0, result.output
    [policy] = saved(lc)
    assert (policy.legal_hold, policy.priority, policy.keep_last, policy.archive_after_days) == (False, -3, 2, 2)
    change = changes(lc)[-1]
    assert (change.action, change.actor, change.reason) == ("set", ME, "hold lifted")
    assert (change.before["legal_hold"], change.after["legal_hold"]) == (True, False)
    assert result.stdout.startswith(f"changed policy {policy.id}: ")


def test_remove_needs_a_reason_and_records_the_policy_it_removed(cli, lc, make_run):
    sized_run(lc, make_run, 500, scraper="books-toscrape", days_ago=3)
    assert cli("add", *BOOKS, "--reason", "start").exit_code == 0
    [policy] = saved(lc)
    preview = cli("remove", str(policy.id), "--dry-run")
    assert preview.stdout.splitlines()[0] == "would archive 0 runs, 0 B in the next passes (-1 run, -500 B from now)"
    assert len(saved(lc)) == 1
    no_reason = cli("remove", str(policy.id))
    assert no_reason.exit_code == 1 and "Error: say why: a reason is required" in no_reason.stderr
    assert len(saved(lc)) == 1
    result = cli("remove", str(policy.id), "--reason", "books are settled")
    assert result.exit_code == 0 and result.stdout.startswith(f"removed policy {policy.id}\tbooks\t")
    assert saved(lc) == []
    change = changes(lc)[-1]
    assert (change.action, change.actor, change.reason, change.after) == ("remove", ME, "books are settled", None)
    assert change.before["name"] == "books"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", *BOOKS), "say why: a reason is required"),
        (("add", "--name", "x", "--reason", "r"), "a new policy needs scraper_pattern, archive_after_days"),
        (("add", *BOOKS, "--delete-after-days", "2", "--reason", "r"), "must be more than archive_after_days"),
        (("add", *BOOKS, "--keep-last", "three", "--reason", "r"), "keep_last must be a whole number"),
        (("add", *BOOKS, "--statuses", "completed,running", "--reason", "r"), "not running"),
        (("add", *BOOKS, "--priority", "5000", "--reason", "r"), "priority must be between -1000 and 1000"),
        (("add", *BOOKS, "--name", "bad\x07name", "--reason", "r"), "bidi or zero-width characters"),
        (("set", "12345", "--priority", "1", "--reason", "r"), "no retention policy 12345"),
        (("set", "abc", "--priority", "1", "--reason", "r"), "a policy id is a whole number"),
        (("remove", "0", "--reason", "r"), "no retention policy 0"),
    ],
)
def test_bad_input_exits_1_with_the_message_on_stderr_and_saves_nothing(cli, lc, args, message):
    result = cli(*args)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert saved(lc) == [] and changes(lc) == []


def test_a_taken_name_and_a_change_of_nothing_are_refused(cli, lc):
    assert cli("add", *BOOKS, "--reason", "first").exit_code == 0
    again = cli("add", *BOOKS, "--reason", "second")
    assert again.exit_code == 1 and "a retention policy named 'books' exists already" in again.stderr
    [policy] = saved(lc)
    nothing = cli("set", str(policy.id), "--reason", "why not")
    assert nothing.exit_code == 2 and "say what to change" in nothing.stderr
    assert len(changes(lc)) == 1
