"""`manage.py staff_user`: the console's account for demos and tests."""

import pytest
from django.core.management import CommandError, call_command

from trips.models import User

pytestmark = pytest.mark.django_db


def test_makes_a_staff_account_with_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("STAFF_PASSWORD", "first-Pa55word")

    call_command("staff_user", "watcher@example.com")

    user = User.objects.get(username="watcher@example.com")
    assert user.is_staff and user.is_active and not user.is_superuser
    assert user.check_password("first-Pa55word")


def test_run_again_it_resets_the_password_of_the_same_account(monkeypatch):
    monkeypatch.setenv("STAFF_PASSWORD", "first-Pa55word")
    call_command("staff_user", "watcher@example.com")
    monkeypatch.setenv("STAFF_PASSWORD", "second-Pa55word")

    call_command("staff_user", "Watcher@Example.com")

    assert User.objects.count() == 1
    assert User.objects.get().check_password("second-Pa55word")


def test_refuses_without_a_password(monkeypatch):
    monkeypatch.delenv("STAFF_PASSWORD", raising=False)

    with pytest.raises(CommandError, match="STAFF_PASSWORD"):
        call_command("staff_user", "watcher@example.com")
    assert not User.objects.exists()
