"""Small load generators and probes scripts/bench needs and no stock tool
offers. Python's standard library only; every command prints its result on
stdout (JSON for the structured ones).

  busy SECONDS                 share of all cores busy (%) over SECONDS
  fsync PATH SECONDS           median fdatasync of a 64-byte append (µs)
  mset FMT START COUNT         RESP MSETs (500 keys each) of FMT % i, value "xxx"
  gets FMT COUNT               RESP GETs of FMT % i for i < COUNT
  values PORT FMT COUNT         how many of the keys FMT % i (i < COUNT) do not
                               hold "xxx", read with MGETs
  rss PID                      resident set size of PID (KiB)
  children PID                 the process ids whose parent is PID
  idle PORT PID CONNS          open CONNS idle connections (each answers one
                               PING), report PID's RSS before and with them
  drain PORT TIMEOUT N PID...   resume the stopped PIDs, poll wb_pending until 0;
                               the rate at which the N pending writes drained
  pace PORT RATE SECONDS PREFIX
                               SETs of distinct keys at RATE per second for
                               SECONDS over 50 pipelined connections, sampling
                               wb_pending; whether the queue kept emptying
  pglat PREFIX                 p50 and p99 (ms) from pgbench's -l logs
"""

import glob
import json
import os
import selectors
import signal
import socket
import statistics
import sys
import time

# The queue counts as empty at or below one processor batch (batch_max).
EMPTY_AT = 1000


def busy(seconds):
    def sample():
        f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(f), f[3] + f[4]

    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    print(round(100 * (1 - (i1 - i0) / max(1, t1 - t0))))


def fsync(path, seconds):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times, end = [], time.monotonic() + seconds
    while time.monotonic() < end or not times:
        os.write(fd, b"x" * 64)
        t = time.perf_counter()
        os.fdatasync(fd)
        times.append(time.perf_counter() - t)
    os.close(fd)
    os.unlink(path)
    print(round(statistics.median(times) * 1e6))


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # pid (comm) state ppid …; comm may hold spaces and parentheses.
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(entry)
    print(" ".join(found))


def command(*parts):
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        p = p if isinstance(p, bytes) else str(p).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


def mset(fmt, start, count, chunk=500):
    out = sys.stdout.buffer
    for lo in range(start, start + count, chunk):
        parts = ["MSET"]
        for i in range(lo, min(start + count, lo + chunk)):
            parts += [fmt % i, "xxx"]
        out.write(command(*parts))


def gets(fmt, count):
    out = sys.stdout.buffer
    for i in range(count):
        out.write(command("GET", fmt % i))


def values(port, fmt, count, chunk=500):
    sock = socket.create_connection(("127.0.0.1", port))
    reader = sock.makefile("rb")
    wrong = 0
    for lo in range(0, count, chunk):
        keys = [fmt % i for i in range(lo, min(count, lo + chunk))]
        sock.sendall(command("MGET", *keys))
        head = reader.readline()
        if not head.startswith(b"*"):
            raise SystemExit(f"MGET answered {head!r}")
        for _ in range(int(head[1:])):
            size = int(reader.readline()[1:])
            value = reader.read(size + 2)[:-2] if size >= 0 else None
            wrong += value != b"xxx"
    print(wrong)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


class Info:
    """One connection for INFO polling."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def field(self, section, name):
        self.sock.sendall(command("INFO", section))
        while b"\r\n" not in self.buf:
            self.buf += self._recv()
        head, self.buf = self.buf.split(b"\r\n", 1)
        if not head.startswith(b"$"):
            raise SystemExit(f"INFO {section} answered {head!r}")
        size = int(head[1:])
        while len(self.buf) < size + 2:
            self.buf += self._recv()
        body, self.buf = self.buf[:size], self.buf[size + 2 :]
        for line in body.split(b"\r\n"):
            if line.startswith(name.encode() + b":"):
                return int(line.split(b":", 1)[1])
        raise SystemExit(f"INFO {section} has no {name}")

    def pending(self):
        return self.field("writebehind", "wb_pending")

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise SystemExit("the server closed the INFO connection")
        return data


def idle(port, pid, conns):
    before = rss_kib(pid)
    socks, answered = [], 0
    for lo in range(0, conns, 100):
        batch = []
        for _ in range(lo, min(conns, lo + 100)):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(command("PING"))
            batch.append(s)
        for s in batch:
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = s.recv(64)
                if not chunk:
                    break
                data += chunk
            answered += data == b"+PONG\r\n"
        socks += batch
    time.sleep(0.5)  # let the server finish any per-connection setup
    with_conns = rss_kib(pid)
    for s in socks:
        s.close()
    print(json.dumps({"conns": conns, "answered": answered, "rss_before_kib": before,
                      "rss_kib": with_conns}))


def drain(port, timeout, start, pids):
    """Resumes the stopped PIDS (PostgreSQL) and times how long the START
    pending writes take to drain."""
    info = Info(port)
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    t0 = time.monotonic()
    last_full, first_drop, zero = t0, None, None
    while time.monotonic() - t0 < timeout:
        now, p = time.monotonic(), info.pending()
        if p >= start:
            last_full = now
        elif first_drop is None:
            first_drop = now
        if p == 0:
            zero = now
            break
        time.sleep(0.01)
    result = {"start_pending": start, "drained": zero is not None}
    if zero is not None:
        result["resume_to_empty_s"] = round(zero - t0, 3)
        result["first_drop_s"] = round((first_drop or zero) - t0, 3)
        # From the last sample still holding everything to the first empty
        # one: the rate once applying started, without the retry backoff.
        result["rows_per_s"] = round(start / max(zero - last_full, 1e-3))
    print(json.dumps(result))


class Conn:
    """A non-blocking pipelined connection that counts replies."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.out = bytearray()
        self.tail = b""
        self.replies = self.errors = 0

    def flush(self):
        if self.out:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                return
            del self.out[:n]

    def read(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise SystemExit("the server closed a load connection")
        data = self.tail + chunk
        lines = data.split(b"\r\n")
        self.tail = lines.pop()
        self.replies += len(lines)
        self.errors += sum(1 for line in lines if line.startswith(b"-"))


def pace(port, rate, seconds, prefix, nconns=50, every=0.05):
    conns = [Conn(port) for _ in range(nconns)]
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    info = Info(port)
    samples, sent = [], 0
    start = time.monotonic()
    end, deadline, next_sample = start + seconds, start + seconds + 120, start
    all_acked = None
    while True:
        now = time.monotonic()
        due = int(rate * (min(now, end) - start))
        while sent < due:
            key = b"%s:%010d" % (prefix, sent)
            conns[sent % nconns].out += b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n" % (
                len(key), key)
            sent += 1
        for c in conns:
            c.flush()
        for k, _ in sel.select(0.002):
            k.data.read()
        if now >= next_sample:
            samples.append((round(now - start, 3), info.pending()))
            next_sample += every
        acked = sum(c.replies for c in conns)
        if now >= end and acked >= sent:
            all_acked = now
            break
        if now > deadline:
            break
    # After the load: how long until the queue is empty again.
    empty_after = None
    while time.monotonic() < deadline:
        p = info.pending()
        samples.append((round(time.monotonic() - start, 3), p))
        if p == 0:
            empty_after = round(time.monotonic() - max(end, all_acked or end), 3)
            break
        time.sleep(every)
    print(json.dumps(pace_verdict(rate, seconds, sent, conns, samples, all_acked, start,
                                  empty_after)))


def pace_verdict(rate, seconds, sent, conns, samples, all_acked, start, empty_after):
    """Whether the queue kept emptying during the second half of the load:
    at least one sample at or below EMPTY_AT in every whole second of it (or
    in the whole second half when that is shorter than a second)."""
    half = [(t, p) for t, p in samples if seconds / 2 <= t <= seconds]
    windows, t = [], seconds / 2
    while t < seconds:
        windows.append((t, min(seconds, t + 1.0)))
        t += 1.0
    emptied = bool(half) and all(
        any(p <= EMPTY_AT for ts, p in half if lo <= ts <= hi) for lo, hi in windows
    )
    acked_per_s = round(sent / max(1e-3, (all_acked or time.monotonic()) - start))
    return {
        "offered_per_s": rate,
        # Below this the load did not run at the rate asked for, and the
        # queue emptying proves less.
        "reached_rate": acked_per_s >= 0.9 * rate,
        "seconds": seconds,
        "sent": sent,
        "acked_per_s": acked_per_s,
        "errors": sum(c.errors for c in conns),
        "max_pending_second_half": max((p for _, p in half), default=None),
        "emptied_during_load": emptied,
        "empty_after_load_s": empty_after,
    }


def pglat(prefix):
    lat = []
    for path in glob.glob(prefix + "*"):
        with open(path) as f:
            # client_id transaction_no time_us script_no time_epoch time_us
            lat += [int(line.split()[2]) for line in f if line.strip()]
    if not lat:
        raise SystemExit(f"no pgbench transaction log at {prefix}*")
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000
    print(f"{pick(0.50):.3f} {pick(0.99):.3f}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "busy":
        busy(float(args[0]))
    elif cmd == "fsync":
        fsync(args[0], float(args[1]))
    elif cmd == "mset":
        mset(args[0], int(args[1]), int(args[2]))
    elif cmd == "gets":
        gets(args[0], int(args[1]))
    elif cmd == "children":
        children(int(args[0]))
    elif cmd == "values":
        values(int(args[0]), args[1], int(args[2]))
    elif cmd == "rss":
        print(rss_kib(int(args[0])))
    elif cmd == "idle":
        idle(int(args[0]), int(args[1]), int(args[2]))
    elif cmd == "drain":
        drain(int(args[0]), float(args[1]), int(args[2]), [int(p) for p in args[3:]])
    elif cmd == "pace":
        pace(int(args[0]), float(args[1]), float(args[2]), args[3].encode())
    elif cmd == "pglat":
        pglat(args[0])
    else:
        raise SystemExit(f"bench_tools.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
