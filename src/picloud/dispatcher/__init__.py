"""The dispatcher: claims outbox deliveries and runs their webhook or SQL handlers.

``picloud.claim_deliveries`` leases due deliveries (FOR UPDATE SKIP LOCKED), so any
number of dispatchers share one database; a lease that runs out (a dispatcher killed
mid-delivery) makes the delivery due again. NOTIFY on ``picloud.dispatch_channel()``
wakes the dispatcher; polling (and the next due time) is the fallback.
"""

from picloud.dispatcher.handlers import Claimed, HandlerFailed, signature
from picloud.dispatcher.runner import Dispatcher

__all__ = ["Claimed", "Dispatcher", "HandlerFailed", "signature"]
