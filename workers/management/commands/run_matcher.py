"""`manage.py run_matcher` (the Procfile's `matcher`): see dispatch/matcher.py."""

import signal
import threading

from django.core.management.base import BaseCommand

from dispatch.matcher import run_matcher


class Command(BaseCommand):
    help = (
        "Assign the requests gathered over each DISPATCH_BATCH_WINDOW_MS together "
        "(DISPATCH_POLICY=batch); one matcher works at a time, the others stand by. "
        "Idle under other policies."
    )

    def handle(self, *args, **options) -> None:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        run_matcher(stop)
