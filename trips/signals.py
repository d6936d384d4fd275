"""A deactivated or deleted user's sockets close (PROTOCOL.md, "WebSocket,
extended"): the handshake already refuses them, and a socket never outlives
the credentials that opened it.

`QuerySet.update(is_active=False)` sends no signal; deactivate through
`save()` (as the admin does).
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from trips import sockets
from trips.models import User


@receiver(post_save, sender=User, dispatch_uid="trips.close_sockets_of_inactive_user")
def close_sockets_of_inactive_user(sender, instance: User, update_fields=None, **kwargs) -> None:
    if instance.is_active or (update_fields is not None and "is_active" not in update_fields):
        return
    sockets.sockets_revoke_on_commit(instance.pk, every=True)


@receiver(post_delete, sender=User, dispatch_uid="trips.close_sockets_of_deleted_user")
def close_sockets_of_deleted_user(sender, instance: User, **kwargs) -> None:
    sockets.sockets_revoke_on_commit(instance.pk, every=True)
