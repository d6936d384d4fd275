"""A log-out anywhere (the admin's too, which the staff console uses) ends
the sockets that session opened, as `/api/log_out/` does (trips.sockets)."""

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from trips import sockets


@receiver(user_logged_out, dispatch_uid="pages.close_sockets_of_the_session")
def close_sockets_of_the_session(sender, request, user, **kwargs) -> None:
    session = sockets.session_digest(getattr(request.session, "session_key", None))
    if user is not None and session is not None:
        sockets.sockets_revoke_on_commit(user.pk, session=session)
