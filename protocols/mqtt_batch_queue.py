"""A bounded FIFO that hands out batches: up to N items, or what came within a short wait.

paho's network thread puts each message here and returns at once; the consumer's
worker takes a batch, commits it, then acknowledges it. The bound is a safety
net: with QoS 1 the broker never has more unacknowledged messages in flight
than the consumer's Receive Maximum, and the queue is sized above that, so a
put only waits if a broker ignores Receive Maximum or floods QoS 0 (then the
waiting network thread stops reading the socket, and TCP slows the broker).
"""

import threading
import time
from collections import deque


class BatchQueue:
    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)

    def __len__(self):
        with self._lock:
            return len(self._items)

    def put(self, item, timeout=None):
        """Append ``item``; waits while the queue is full. Returns False on timeout."""
        with self._not_full:
            if not self._not_full.wait_for(
                lambda: len(self._items) < self.capacity, timeout=timeout
            ):
                return False
            self._items.append(item)
            self._not_empty.notify()
            return True

    def take(self, max_items, max_wait, idle_timeout=None):
        """Up to ``max_items`` items in arrival order.

        Waits up to ``idle_timeout`` seconds (forever when None) for a first item,
        then up to ``max_wait`` seconds more for the batch to fill. Returns an
        empty list when nothing came within ``idle_timeout``.
        """
        with self._not_empty:
            if not self._not_empty.wait_for(lambda: self._items, timeout=idle_timeout):
                return []
            deadline = time.monotonic() + max_wait
            while len(self._items) < max_items:
                left = deadline - time.monotonic()
                if left <= 0 or not self._not_empty.wait(left):
                    break
            batch = [self._items.popleft() for _ in range(min(max_items, len(self._items)))]
            self._not_full.notify_all()
            return batch
