"""Redis keys of push notifications, and how long each lives.

sent(notification, device)
               string: "sending" while a worker holds the send of one
               notification to one device, "sent" once the provider took
               it. A task run twice, or retried after some devices were
               reached, skips what is claimed: each device gets each
               notification once. "sending" lives a little longer than a
               task may run, so a killed worker's redelivered task sends.
"""

PREFIX = "taxi:push:"

SENDING_TTL_S = 60
SENT_TTL_S = 24 * 3600


def sent(notification_id: str, device_id: str) -> str:
    return f"{PREFIX}sent:{notification_id}:{device_id}"
