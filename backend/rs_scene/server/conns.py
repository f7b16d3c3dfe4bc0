"""Connection bookkeeping that keeps slow or idle clients from holding the service down: every connection
has a deadline for what it is waiting on (request line and headers, or the body), a watchdog closes the
ones past it, and when all slots are taken a new connection evicts the oldest that is still waiting."""

from __future__ import annotations

import socket
import threading
import time

HEADER_DEADLINE_S = 10.0  # request line + headers, and a kept-alive connection's wait for its next request
BODY_RATE_BPS = 20 * 1024**2  # a body gets HEADER_DEADLINE_S plus its size at this rate (loopback: far more)
MAX_CONNECTIONS = 32


class Connections:
    """Open sockets and their deadlines (None while a request is being handled: no deadline)."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self.limit = limit
        self._open: dict[socket.socket, tuple[float, float | None]] = {}  # sock -> (opened, deadline)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._watch, name="rs-scene-conn-watchdog", daemon=True).start()

    def admit(self, sock: socket.socket) -> bool:
        """Register a new connection; False (and the caller drops it) when every slot is busy handling."""
        with self._lock:
            if len(self._open) >= self.limit:
                waiting = [(opened, s) for s, (opened, dl) in self._open.items() if dl is not None]
                if not waiting:
                    return False
                _, oldest = min(waiting, key=lambda w: w[0])
                self._drop(oldest)
            now = time.monotonic()
            self._open[sock] = (now, now + HEADER_DEADLINE_S)
        return True

    def waiting_for_request(self, sock: socket.socket) -> None:
        self._set(sock, time.monotonic() + HEADER_DEADLINE_S)

    def reading_body(self, sock: socket.socket, length: int) -> None:
        self._set(sock, time.monotonic() + HEADER_DEADLINE_S + length / BODY_RATE_BPS)

    def handling(self, sock: socket.socket) -> None:
        self._set(sock, None)

    def close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.pop(sock, None)

    def count(self) -> int:
        with self._lock:
            return len(self._open)

    def stop(self) -> None:
        self._stop.set()

    def _set(self, sock: socket.socket, deadline: float | None) -> None:
        with self._lock:
            if sock in self._open:
                self._open[sock] = (self._open[sock][0], deadline)

    def _drop(self, sock: socket.socket) -> None:
        """Unblock the thread reading ``sock``: its read returns empty and the handler ends."""
        self._open.pop(sock, None)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            now = time.monotonic()
            with self._lock:
                late = [s for s, (_, dl) in self._open.items() if dl is not None and dl < now]
                for sock in late:
                    self._drop(sock)
