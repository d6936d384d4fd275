"""`manage.py staff_user <username>`: a staff account for the console.

Creates it, or resets the password of the existing one, so a demo or a
test can run it every time. The password comes from the environment
(STAFF_PASSWORD), never from the command line, where `ps` would show it.
"""

import os

from django.core.management.base import BaseCommand, CommandError

from trips.models import User


class Command(BaseCommand):
    help = "Create or update a staff (is_staff) account; password from STAFF_PASSWORD."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")

    def handle(self, *args, username: str, **options) -> None:
        password = os.environ.get("STAFF_PASSWORD", "")
        if not password:
            raise CommandError("set STAFF_PASSWORD in the environment")
        user = User.objects.filter(username__iexact=username).first()
        created = user is None
        if created:
            user = User(username=username, first_name="Staff", last_name="Console")
        user.is_staff = True
        user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"staff user {username} {'created' if created else 'updated'}")
