"""Realtime delivery: the relay that turns NOTIFYs into SSE frames for live subscribers.

- ``sse``: frame encoding (each frame is encoded once, for every subscriber).
- ``hub``: per-(app, topic) channels of subscribers with bounded buffers.
- ``relay``: the ``relay`` role: one LISTEN connection per process, fetching new rows
  from ``picloud.messages`` and back-filling after a reconnect.
- ``gc``: the ``gc`` role: retention pruning of ``picloud.messages``.
"""
