"""A TCP relay on 127.0.0.1 between a client and an upstream server that a test
can blackhole: forwarding stops in both directions while every socket stays
open, so the client sees what a network partition shows it (requests that time
out, connections that neither close nor answer), not a refused or reset
connection.

It can also be re-pointed (retarget): connections already open stay with the
server they reached and new ones go to the new upstream, as a client sees a
DNS name that moves (ElastiCache's primary endpoint after a failover).
"""

import selectors
import socket
import threading


class TcpRelay:
    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.forwarded_bytes = 0
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._peers = {}     # socket -> the socket its bytes go to
        self._parked = []    # accepted while blackholed: held open, never served
        # Held while bytes move, so that once blackhole() returns not one more
        # byte crosses.
        self._lock = threading.Lock()
        self._blackholed = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tcp-relay", daemon=True)
        self._thread.start()

    def blackhole(self):
        with self._lock:
            self._blackholed = True
            for s in self._peers:
                self._selector.unregister(s)

    def resume(self):
        """Forwarding again on every connection held open while blackholed."""
        with self._lock:
            self._blackholed = False
            for s in self._peers:
                self._selector.register(s, selectors.EVENT_READ, "conn")

    def retarget(self, upstream_port):
        with self._lock:
            self.upstream_port = upstream_port

    def close(self):
        with self._lock:
            self._stopping = True
        self._thread.join(timeout=5)
        for s in list(self._peers) + self._parked + [self.listener]:
            s.close()
        self._selector.close()

    def _run(self):
        while True:
            events = self._selector.select(timeout=0.05)
            with self._lock:
                if self._stopping:
                    return
                for key, _ in events:
                    if key.data is None:
                        self._accept()
                    elif not self._blackholed:
                        self._forward(key.fileobj)

    def _accept(self):
        client, _ = self.listener.accept()
        if self._blackholed:
            self._parked.append(client)
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self._peers[client], self._peers[upstream] = upstream, client
        self._selector.register(client, selectors.EVENT_READ, "conn")
        self._selector.register(upstream, selectors.EVENT_READ, "conn")

    def _forward(self, source):
        if source not in self._peers:
            return  # closed earlier in this round with its peer
        peer = self._peers[source]
        try:
            data = source.recv(65536)
            if data:
                peer.sendall(data)  # small lease commands: never blocks for long
                self.forwarded_bytes += len(data)
                return
        except OSError:
            pass
        for s in (source, peer):
            self._selector.unregister(s)
            del self._peers[s]
            s.close()
