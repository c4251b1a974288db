"""Remote execution: runs on Celery workers over a Redis broker, watched from this machine.

Celery and redis-py are an optional extra (``pip install prismq-desktop[remote]``) and are
imported only inside this subpackage and only when a broker is used: the rest of the core
imports without them. Layout:

- config.py    the broker URL (``--broker`` / ``PRISMQ_BROKER_URL``), the Celery app factory,
               the settings every remote piece shares (heartbeat, stream cap, TTLs)
- protocol.py  Redis key names and the stream entry format (no Redis import)
- worker.py    what runs on a worker: the Celery task that runs a spec with the local
               executor and streams it, control, heartbeats, leftovers of a dead predecessor
- executor.py  `RemoteExecutor`, the submitting side (an `Executor`)
- locks.py     cross-machine idempotency keys and schedule fire claims (``SET NX`` + TTL)
"""
