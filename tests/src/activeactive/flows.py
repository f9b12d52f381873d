"""Load for the active-active proof (tests/tests/uml_activeactive.rs), one process, one epoll
loop (UML has one CPU: no interpreter per connection).

  serve NAME PORT           a real server: every line received is answered with NAME
  hold VIP PORT N DIR       N long-lived flows, each sending a line every PERIOD s and
                            expecting an answer within TIMEOUT s; DIR/status.json is rewritten
                            every half second; DIR/stop ends it. A new id in DIR/sweep makes
                            every flow send a line now; status.json says "swept": id once all
                            of them were answered (or broke)
  probe VIP PORT RATE SECS  new connections at RATE/s for SECS s; prints opened/answered
  map VIP PORT FIRST N      one connection from each source port FIRST..FIRST+N-1; prints
                            {port: server} (closed by RST, so the ports can be reused at once)
"""
import json, os, selectors, socket, struct, sys, time

PERIOD, TIMEOUT = 5.0, 6.0
sel = selectors.DefaultSelector()


def serve(name, port):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", int(port)))
    listener.listen(4096)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    answer = (name + "\n").encode()
    while True:
        for key, _ in sel.select():
            if key.data is None:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, b"")
                continue
            conn = key.fileobj
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(conn)
                conn.close()
                continue
            try:
                conn.send(answer * data.count(b"\n"))
            except OSError:
                pass


class Flow:
    def __init__(self, n, vip, port, sport=0):
        self.n, self.server, self.buf = n, None, b""
        self.sent_at, self.next_at, self.error = None, 0.0, None
        self.sock = socket.socket()
        self.sock.setblocking(False)
        if sport:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("0.0.0.0", sport))
        self.sock.connect_ex((vip, int(port)))
        self.sent_at = time.monotonic()
        self.pending = b"p\n"
        sel.register(self.sock, selectors.EVENT_WRITE, self)

    def fail(self, why):
        if self.error is None:
            self.error = why
        try:
            sel.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()

    def ping(self, now):
        self.sent_at, self.pending = now, b"p\n"
        sel.modify(self.sock, selectors.EVENT_WRITE, self)

    def event(self, mask, now):
        if mask & selectors.EVENT_WRITE:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return self.fail(os.strerror(err))
            try:
                self.sock.send(self.pending)
            except OSError as e:
                return self.fail(str(e))
            sel.modify(self.sock, selectors.EVENT_READ, self)
            return
        try:
            data = self.sock.recv(4096)
        except OSError as e:
            return self.fail(str(e))
        if not data:
            return self.fail("closed by the peer")
        self.buf += data
        if b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            name = line.decode()
            if self.server is not None and name != self.server:
                return self.fail("answered by %s, then %s" % (self.server, name))
            self.server, self.sent_at = name, None

    def late(self, now):
        return self.sent_at is not None and now - self.sent_at > TIMEOUT


def step(flows, now):
    for key, mask in sel.select(0.05):
        key.data.event(mask, now)
    for f in flows:
        if f.error is None and f.late(now):
            f.fail("no answer within %.0f s" % TIMEOUT)


def write_status(folder, flows, opened, swept):
    servers = {}
    for f in flows:
        if f.error is None and f.server:
            servers[f.server] = servers.get(f.server, 0) + 1
    status = {
        "opened": opened,
        "up": sum(1 for f in flows if f.error is None and f.server),
        "broken": {str(f.n): "%s: %s" % (f.server, f.error)
                   for f in flows if f.error is not None},
        "servers": servers,
        "swept": swept,
    }
    tmp = os.path.join(folder, "status.tmp")
    with open(tmp, "w") as out:
        json.dump(status, out)
    os.replace(tmp, os.path.join(folder, "status.json"))


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def hold(vip, port, n, folder):
    n = int(n)
    flows, opened = [], 0
    last_status, seen, sweeping, swept = 0.0, None, None, None
    while not os.path.exists(os.path.join(folder, "stop")):
        now = time.monotonic()
        # At most 150 opening at once, so the SYNs do not all arrive together.
        while opened < n and sum(1 for f in flows if f.server is None and f.error is None) < 150:
            flows.append(Flow(opened, vip, port))
            opened += 1
        sweep = read(os.path.join(folder, "sweep"))
        if sweep is not None and sweep != seen:
            seen, sweeping = sweep, sweep
            for f in flows:
                if f.error is None and f.sent_at is None:
                    f.ping(now)
        for i, f in enumerate(flows):
            if f.error is None and f.sent_at is None and now >= f.next_at:
                f.ping(now)
                f.next_at = now + PERIOD + (i % 50) * PERIOD / 50
        step(flows, now)
        if sweeping is not None and all(f.error or f.sent_at is None for f in flows):
            swept, sweeping, last_status = sweeping, None, 0.0
        if now - last_status > 0.5:
            last_status = now
            write_status(folder, flows, opened, swept)


def probe(vip, port, rate, secs):
    flows, start = [], time.monotonic()
    total = int(float(rate) * float(secs))
    while True:
        now = time.monotonic()
        due = min(total, int((now - start) * float(rate)) + 1)
        while len(flows) < due:
            flows.append(Flow(len(flows), vip, port))
        step(flows, now)
        if len(flows) == total and all(f.server or f.error for f in flows):
            break
    answered = sum(1 for f in flows if f.server and f.error is None)
    errors = sorted({f.error for f in flows if f.error})
    print(json.dumps({"opened": total, "answered": answered, "errors": errors}))


def map_ports(vip, port, first, n):
    first, n = int(first), int(n)
    flows, out, next_port = [], {}, first
    while next_port < first + n or flows:
        now = time.monotonic()
        while next_port < first + n and len(flows) < 100:
            flows.append(Flow(next_port, vip, port, sport=next_port))
            next_port += 1
        step(flows, now)
        for f in [f for f in flows if f.server or f.error]:
            out[f.n] = f.server if f.error is None else "error: " + f.error
            if f.error is None:
                # RST, not FIN: no TIME_WAIT, so the same port can connect again at once.
                f.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                f.fail("closed")
            flows.remove(f)
    print(json.dumps(out))


if __name__ == "__main__":
    {"serve": serve, "hold": hold, "probe": probe, "map": map_ports}[sys.argv[1]](*sys.argv[2:])
