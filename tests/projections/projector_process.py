"""A real projector process for the SIGKILL test: ``python projector_process.py [delay]``.

Builds the application from the AERO_* settings like the service does and
runs ``run_projector`` until SIGTERM. With a delay, every event is announced
on stdout ("audit <position>") and then processed slowly, so the test can
kill the process in the middle of a batch.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

from interfaces.cli.views import run_projector
from interfaces.composition import build_application, build_views, load_settings
from projections.audit import AuditProjection
from projections.directory import DirectoryProjection

BATCH_SIZE = 50
_print_lock = threading.Lock()


def slowed(cls: Any, name: str, delay: float) -> None:
    process = cls.process

    def slow_process(self: Any, writer: Any, notification: Any, mapper: Any) -> None:
        with _print_lock:  # two runner threads share stdout
            print(f"{name} {notification.id}", flush=True)
        time.sleep(delay)
        process(self, writer, notification, mapper)

    cls.process = slow_process


def main() -> int:
    delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    if delay:
        slowed(AuditProjection, "audit", delay)
        slowed(DirectoryProjection, "directory", delay)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = load_settings()
    app = build_application(settings)
    try:
        print("started", flush=True)
        problems = run_projector(
            app, build_views(settings), stop, batch_size=BATCH_SIZE, poll_interval=0.05
        )
    finally:
        app.close()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
