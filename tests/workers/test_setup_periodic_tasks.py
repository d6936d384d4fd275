"""`manage.py setup_periodic_tasks`: the schedule in code, installed idempotently."""

import io

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from taxi.celery import app
from workers.schedules import NAME_PREFIX, schedules

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def tasks_registered():
    """The tasks a worker registers when it starts (autodiscovery imports the
    task modules then, not when the app is created)."""
    app.loader.import_default_modules()


EXPECTED_TASKS = {
    "workers.sweep_dispatch",
    "workers.sweep_silent_drivers",
    "workers.expire_stale_trips",
    "workers.refresh_surge",
    "workers.sweep_scheduled",
}


def ours():
    return PeriodicTask.objects.filter(name__startswith=NAME_PREFIX)


def test_it_installs_every_schedule_once_however_often_it_runs(settings):
    call_command("setup_periodic_tasks", stdout=io.StringIO())
    first = {t.name: (t.task, t.interval_id) for t in ours()}
    call_command("setup_periodic_tasks", stdout=io.StringIO())

    rows = list(ours())
    assert {t.name: (t.task, t.interval_id) for t in rows} == first
    assert {t.task for t in rows} == EXPECTED_TASKS
    assert len(rows) == len(schedules())
    for row in rows:
        assert row.enabled and row.task in app.tasks
        assert row.interval.period == IntervalSchedule.SECONDS
        assert row.expire_seconds == row.interval.every, "a backlog is dropped, not replayed"
    sweep = next(r for r in rows if r.task == "workers.sweep_dispatch")
    assert sweep.interval.every == round(settings.DISPATCH_SWEEP_EVERY_S)
    pairs = IntervalSchedule.objects.values_list("every", "period")
    assert len(pairs) == len(set(pairs)), "no duplicate intervals"


def test_it_follows_a_changed_setting_and_drops_what_the_code_no_longer_lists(settings):
    call_command("setup_periodic_tasks", stdout=io.StringIO())
    PeriodicTask.objects.create(
        name=NAME_PREFIX + "retired", task="workers.gone", interval=IntervalSchedule.objects.first()
    )
    operators = PeriodicTask.objects.create(
        name="operator's own",
        task="workers.sweep_dispatch",
        interval=IntervalSchedule.objects.first(),
    )
    settings.DISPATCH_SWEEP_EVERY_S = 7

    call_command("setup_periodic_tasks", stdout=io.StringIO())

    assert {t.task for t in ours()} == EXPECTED_TASKS
    sweep = ours().get(task="workers.sweep_dispatch")
    assert sweep.interval.every == 7
    assert PeriodicTask.objects.filter(pk=operators.pk).exists(), "not ours: left alone"
