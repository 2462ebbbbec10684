"""Interoperability checks of the chat server's STOMP over WebSocket with stomp.py.

Usage: interop/.venv/bin/python interop/stomp_py_check.py CONFIG_JSON
  CONFIG_JSON (the JSON text, or a path to a file holding it; interop/setup-fixture.sh prints
  one): {"ws1","ws2","http1","renter_token","owner_token","renter_id","owner_id","room",
  "other_room"}, other_room being a room the renter is not a member of.

Prints one JSON line per check, {"check","ok","detail"}, and exits 0 only if all pass.
stomp.py's WebSocket transport offers no sub-protocol and cannot split a frame over several
WebSocket messages, so check a expects no sub-protocol and check d sends the large frame whole.
"""

import json
import os
import secrets
import sys
import threading
import time
import traceback
from urllib.parse import urlsplit

import stomp

WAIT_S = 5.0
WHOLE_RUN_S = 40.0
IDLE_S = 7.0
HEARTBEAT_MS = 1000  # what the clients offer and ask for, both ways
# Allowance for threads and the network when judging the server's heart-beat interval.
# The server's heart-beats are judged by their mean gap, which must be within the agreed
# interval (plus this much for timers), and their longest gap, which must stay below the
# tolerance of common clients (stomp.py's default drops a connection silent for 1.5
# intervals): a server late every time fails the first, one hiccup on a busy machine does not.
HEARTBEAT_SLACK_MS = 50
HEARTBEAT_TOLERANCE = 1.5
ERROR_DESTINATION = "/user/queue/errors"
RUN_ID = secrets.token_hex(4)


class CheckFailed(Exception):
    pass


def expect(condition, detail):
    if not condition:
        raise CheckFailed(detail)


def abbreviate(text, limit=80):
    if text is None:
        return ""
    one_line = json.dumps(text, ensure_ascii=False)
    return one_line if len(one_line) <= limit else f"{one_line[:limit]}…({len(text)} chars)"


def describe(entry):
    kind, frame = entry["kind"], entry["frame"]
    if frame is None:
        return kind
    headers = ", ".join(f"{name}:{value}" for name, value in frame.headers.items())
    return f"{kind} {{{headers}}} {abbreviate(frame.body)}"


def korean_body(chars):
    """Hangul syllables, varied so a lost or repeated piece shows."""
    return "".join(chr(0xAC00 + (i * 37) % 11172) for i in range(chars))


class Peer(stomp.ConnectionListener):
    """One stomp.py connection with everything it received kept in order, so a check can wait
    for the next frame matching something and say what came instead when it does not arrive."""

    def __init__(self, name, url, token):
        self.name = name
        self.url = url
        self.token = token
        self.frames = []  # {"kind": "CONNECTED"|"MESSAGE"|"RECEIPT"|"ERROR"|"CLOSE", "frame", "at"}
        self.heartbeats_in = []  # monotonic times
        self.changed = threading.Condition()
        self.counter = 0
        self.connected_frame = None
        parts = urlsplit(url)
        self.conn = stomp.WSStompConnection(
            [(parts.hostname, parts.port or 80)],
            ws_path=parts.path,
            heartbeats=(HEARTBEAT_MS, HEARTBEAT_MS),
            reconnect_attempts_max=1,
            # Also the socket's read timeout; the server's heart-beats keep it from firing.
            timeout=10,
        )
        self.conn.set_listener("interop", self)

    # stomp.py calls these on its receiver thread.
    def _push(self, kind, frame=None):
        with self.changed:
            self.frames.append({"kind": kind, "frame": frame, "at": time.monotonic()})
            self.changed.notify_all()

    def on_connected(self, frame):
        self._push("CONNECTED", frame)

    def on_message(self, frame):
        self._push("MESSAGE", frame)

    def on_receipt(self, frame):
        self._push("RECEIPT", frame)

    def on_error(self, frame):
        self._push("ERROR", frame)

    def on_disconnected(self):
        self._push("CLOSE")

    def on_heartbeat(self):
        self.heartbeats_in.append(time.monotonic())

    @property
    def closed(self):
        return any(e["kind"] == "CLOSE" for e in self.frames)

    def recent(self):
        return " | ".join(describe(e) for e in self.frames[-5:]) or "none"

    def wait_for(self, description, match, start=0, timeout=WAIT_S, stop_on_close=True):
        """The first entry from index `start` on that matches, with its index; fails on timeout
        or when an ERROR or the close comes first."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for index in range(start, len(self.frames)):
                    entry = self.frames[index]
                    if match(entry):
                        return index, entry
                    if stop_on_close and entry["kind"] in ("ERROR", "CLOSE"):
                        raise CheckFailed(f"{self.name}: got {describe(entry)} while waiting for {description}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CheckFailed(f"{self.name}: no {description} within {timeout} s; last frames: {self.recent()}")
                self.changed.wait(left)

    def connect(self):
        try:
            self.conn.connect(passcode=self.token, wait=False)
        except Exception as e:  # stomp.py raises ConnectFailedException with no message
            raise CheckFailed(f"{self.name}: could not connect to {self.url}: {type(e).__name__} {e}") from e
        _, entry = self.wait_for(f"CONNECTED from {self.url}", lambda e: e["kind"] == "CONNECTED")
        self.connected_frame = entry["frame"]
        return entry["frame"]

    def next_receipt(self):
        self.counter += 1
        return f"{self.name}-{RUN_ID}-{self.counter}"

    def wait_receipt(self, receipt, description, start=0):
        return self.wait_for(
            f"RECEIPT {receipt} for {description}",
            lambda e: e["kind"] == "RECEIPT" and e["frame"].headers.get("receipt-id") == receipt,
            start=start,
        )

    def subscribe(self, destination, sub_id, headers=None):
        receipt = self.next_receipt()
        start = len(self.frames)
        self.conn.subscribe(destination, id=sub_id, ack="auto", headers={**(headers or {}), "receipt": receipt})
        return self.wait_receipt(receipt, f"SUBSCRIBE {destination}", start)

    def publish(self, destination, body):
        """Sends with a receipt; returns the RECEIPT frame."""
        receipt = self.next_receipt()
        start = len(self.frames)
        self.conn.send(destination, body, headers={"receipt": receipt})
        return self.wait_receipt(receipt, f"SEND to {destination}", start)[1]["frame"]

    def message_with_body(self, body, start=0):
        return self.wait_for(
            f"MESSAGE with body {abbreviate(body)}",
            lambda e: e["kind"] == "MESSAGE" and e["frame"].body == body,
            start=start,
        )

    def room_messages(self, destination):
        return [e for e in self.frames if e["kind"] == "MESSAGE" and e["frame"].headers.get("destination") == destination]

    def stop(self):
        """Disconnects, bounded: DISCONNECT with a receipt when still connected, else just close."""

        def disconnect():
            try:
                if self.conn.is_connected():
                    self.conn.disconnect(receipt=self.next_receipt())
                else:
                    self.conn.transport.disconnect_socket()
            except Exception:
                pass

        worker = threading.Thread(target=disconnect, daemon=True)
        worker.start()
        worker.join(3)


class Checks:
    def __init__(self, config):
        self.config = config
        self.room = f"/rooms/{config['room']}"
        self.peers = []
        self.renter = None
        self.owner = None
        self.idle_beats = {}
        self.failures = 0

    def peer(self, name, url, token):
        p = Peer(name, url, token)
        self.peers.append(p)
        return p

    def report(self, check, ok, detail):
        if not ok:
            self.failures += 1
        print(json.dumps({"check": check, "ok": ok, "detail": detail}, ensure_ascii=False), flush=True)

    def run(self, check, body):
        try:
            self.report(check, True, body())
        except CheckFailed as e:
            self.report(check, False, str(e))
        except Exception:
            self.report(check, False, traceback.format_exc())

    def check_message(self, entry, sender, seq=None):
        h = entry["frame"].headers
        for name in ("destination", "subscription", "message-id", "content-type", "content-length", "seq", "room", "sender", "sent-at"):
            expect(name in h, f"MESSAGE has no {name} header: {describe(entry)}")
        expect(h["subscription"] == "room", f"MESSAGE subscription {h['subscription']}, expected room")
        expect(h["destination"] == self.room, f"MESSAGE destination {h['destination']}, expected {self.room}")
        expect(h["room"] == str(self.config["room"]), f"MESSAGE room {h['room']}, expected {self.config['room']}")
        expect(h["sender"] == str(sender), f"MESSAGE sender {h['sender']}, expected {sender}")
        body_bytes = len(entry["frame"].body.encode("utf-8"))
        expect(int(h["content-length"]) == body_bytes, f"MESSAGE content-length {h['content-length']} but the body has {body_bytes} bytes")
        if seq is not None:
            expect(h["seq"] == str(seq), f"MESSAGE seq {h['seq']}, expected {seq} (from the RECEIPT)")

    def relay_once(self, source, source_id, target, label):
        body = f"{label} {RUN_ID} {time.time_ns()}"
        receipt = source.publish(self.room, body)
        seq = receipt.headers.get("seq", "")
        expect(seq.isdigit(), f"{source.name}: SEND RECEIPT without a seq header: {describe({'kind': 'RECEIPT', 'frame': receipt})}")
        _, got = target.message_with_body(body)
        self.check_message(got, source_id, seq)
        return f"{source.name} -> {target.name}: RECEIPT seq {seq}, MESSAGE seq {got['frame'].headers['seq']}"

    # a
    def connect_both(self):
        c = self.config
        self.renter = self.peer("renter", c["ws1"], c["renter_token"])
        self.owner = self.peer("owner", c["ws2"], c["owner_token"])
        seen = []
        for p, user_id in ((self.renter, c["renter_id"]), (self.owner, c["owner_id"])):
            frame = p.connect()
            h = frame.headers
            expect(h.get("version") == "1.2", f"{p.name}: CONNECTED version {h.get('version')}, expected 1.2")
            expect(h.get("user-name") == str(user_id), f"{p.name}: CONNECTED user-name {h.get('user-name')}, expected {user_id}")
            heart_beat = h.get("heart-beat", "")
            expect(heart_beat.replace(",", "").isdigit(), f"{p.name}: CONNECTED heart-beat {heart_beat!r}")
            protocol = p.conn.transport.socket.getsubprotocol()
            expect(protocol is None, f"{p.name}: sub-protocol {protocol!r} answered though none was offered")
            seen.append(f"{p.name} on {p.url}: version {h['version']}, no sub-protocol offered or answered, heart-beat {heart_beat}")
        return "; ".join(seen)

    # b
    def round_trip(self):
        for p in (self.renter, self.owner):
            p.subscribe(self.room, "room")
        there = self.relay_once(self.renter, self.config["renter_id"], self.owner, "renter to owner")
        back = self.relay_once(self.owner, self.config["owner_id"], self.renter, "owner to renter")
        return f"{there}; {back}"

    # c
    def heartbeats(self):
        marks = {p.name: (len(p.frames), len(p.heartbeats_in)) for p in (self.renter, self.owner)}
        time.sleep(IDLE_S)
        details = []
        for p in (self.renter, self.owner):
            frames_mark, beats_mark = marks[p.name]
            during = p.frames[frames_mark:]
            shown = " | ".join(describe(e) for e in during)
            expect(not any(e["kind"] == "CLOSE" for e in during), f"{p.name}: connection closed while idle: {shown}")
            expect(not any(e["kind"] == "ERROR" for e in during), f"{p.name}: ERROR while idle: {shown}")
            expect(p.conn.is_connected(), f"{p.name}: no longer connected after {IDLE_S} s idle")
            beats = p.heartbeats_in[beats_mark:]
            self.idle_beats[p.name] = beats
            # 3 at the agreed 2000 ms; check c2 judges their spacing.
            expect(len(beats) >= 2, f"{p.name}: {len(beats)} heart-beats from the server in {IDLE_S} s, expected at least 2")
            longest = max(b - a for a, b in zip(beats, beats[1:]))
            details.append(f"{p.name}: {len(beats)} server heart-beats, at most {longest * 1000:.0f} ms apart")
        # Our heart-beats kept the server from closing us (it allows 3 x 2000 ms of silence); a
        # message after the idle time shows both connections still carry traffic.
        self.relay_once(self.renter, self.config["renter_id"], self.owner, "after idle")
        return f"{'; '.join(details)}; still connected, relay works after the idle time"

    # c2: STOMP 1.2 has the server send something at least every max(its sx, our incoming) ms.
    def heartbeat_interval(self):
        details = []
        for p in (self.renter, self.owner):
            offered = p.connected_frame.headers.get("heart-beat", "0,0")
            agreed = max(int(offered.split(",")[0]), HEARTBEAT_MS)
            beats = self.idle_beats.get(p.name, [])
            expect(len(beats) >= 2, f"{p.name}: too few heart-beats in check c to measure their interval")
            gaps = [round((b - a) * 1000) for a, b in zip(beats, beats[1:])]
            mean = sum(gaps) / len(gaps)
            expect(
                mean <= agreed + HEARTBEAT_SLACK_MS and max(gaps) <= agreed * HEARTBEAT_TOLERANCE,
                f"{p.name}: the server's heart-beats came {', '.join(map(str, gaps))} ms apart while idle (mean "
                f"{mean:.0f}); the agreed interval is {agreed} ms (CONNECTED heart-beat {offered}, client heart-beat "
                f"{HEARTBEAT_MS},{HEARTBEAT_MS}): the mean may exceed it by {HEARTBEAT_SLACK_MS} ms, no gap by more "
                f"than {HEARTBEAT_TOLERANCE}x",
            )
            details.append(f"{p.name}: {', '.join(map(str, gaps))} ms apart (agreed {agreed})")
        return "; ".join(details)

    # d
    def large_frame(self):
        body = korean_body(4000)
        receipt = self.renter.publish(self.room, body)
        seq = receipt.headers.get("seq", "")
        expect(seq.isdigit(), f"SEND RECEIPT without seq: {describe({'kind': 'RECEIPT', 'frame': receipt})}")
        try:
            _, got = self.owner.message_with_body(body)
        except CheckFailed:
            near = self.owner.room_messages(self.room)[-1:]
            if near and len(near[0]["frame"].body) > 1000:
                raise CheckFailed(f"owner got a MESSAGE of {len(near[0]['frame'].body)} chars that differs from the 4000 sent: {describe(near[0])}")
            raise
        self.check_message(got, self.config["renter_id"], seq)
        return f"{len(body)} chars ({len(body.encode('utf-8'))} bytes) in one SEND; owner got it intact with seq {seq}"

    # e
    def resume(self):
        c = self.config
        last_seen = max((int(e["frame"].headers["seq"]) for e in self.owner.room_messages(self.room)), default=0)
        expect(last_seen > 0, "owner saw no room message before resuming")
        self.owner.stop()
        self.owner.wait_for("close after DISCONNECT", lambda e: e["kind"] == "CLOSE", stop_on_close=False)

        sent = []
        for i in range(1, 4):
            body = f"missed {i} {RUN_ID}"
            sent.append((body, self.renter.publish(self.room, body).headers.get("seq")))

        self.owner = self.peer("owner-resumed", c["ws2"], c["owner_token"])
        self.owner.connect()
        receipt_index, _ = self.owner.subscribe(self.room, "room", {"last-seq": str(last_seen)})
        replayed = [e for e in self.owner.frames[:receipt_index] if e["kind"] == "MESSAGE"]
        seqs = [int(e["frame"].headers.get("seq")) for e in replayed]
        wanted = [int(seq) for _, seq in sent]
        expect(seqs == wanted, f"after last-seq {last_seen} got seqs {seqs} before the RECEIPT, expected {wanted}")
        for entry, (body, seq) in zip(replayed, sent, strict=True):
            expect(entry["frame"].body == body, f"replayed seq {seq} has body {abbreviate(entry['frame'].body)}, expected {abbreviate(body)}")
            self.check_message(entry, c["renter_id"], seq)

        # A live message next: exactly once, right after the replayed ones.
        live = f"live after resume {RUN_ID}"
        live_seq = int(self.renter.publish(self.room, live).headers.get("seq"))
        self.owner.message_with_body(live)
        time.sleep(0.3)
        got = [int(e["frame"].headers.get("seq")) for e in self.owner.room_messages(self.room)]
        expect(got == wanted + [live_seq], f"resumed owner got seqs {got}, expected exactly {wanted + [live_seq]} (no gap, no duplicate)")
        return f"last seen {last_seen}; replayed {seqs} before the RECEIPT, then live {live_seq}; nothing twice"

    # f
    def business_error(self):
        c = self.config
        self.renter.subscribe(ERROR_DESTINATION, "errors")
        other = f"/rooms/{c['other_room']}"
        results = []
        for what, act in (
            ("SEND", lambda: self.renter.conn.send(other, f"not a member {RUN_ID}")),
            ("SUBSCRIBE", lambda: self.renter.conn.subscribe(other, id="other-room", ack="auto")),
        ):
            start = len(self.renter.frames)
            act()
            _, got = self.renter.wait_for(
                f"MESSAGE on {ERROR_DESTINATION} after {what} to {other}",
                lambda e: e["kind"] == "MESSAGE" and e["frame"].headers.get("destination") == ERROR_DESTINATION,
                start=start,
            )
            try:
                body = json.loads(got["frame"].body)
            except ValueError:
                raise CheckFailed(f"error MESSAGE body is not JSON: {describe(got)}") from None
            expect(body.get("error") == "room_not_found", f"error MESSAGE after {what} has error {body.get('error')!r}, expected 'room_not_found': {describe(got)}")
            expect(got["frame"].headers.get("subscription") == "errors", f"error MESSAGE subscription {got['frame'].headers.get('subscription')}, expected errors")
            results.append(f"{what} -> room_not_found")
        expect(not self.renter.closed and self.renter.conn.is_connected(), "renter: connection closed after a business error")
        after = self.relay_once(self.renter, c["renter_id"], self.owner, "after a business error")
        return f"{', '.join(results)} on {ERROR_DESTINATION}; connection still open; {after}"

    # g
    def protocol_error(self):
        c = self.config
        results = []
        for what, act in (
            ("ACK", lambda conn: conn.ack("1-1")),
            ("unknown command FOO", lambda conn: conn.send_frame("FOO", {"destination": self.room})),
        ):
            p = self.peer("renter-bad", c["ws1"], c["renter_token"])
            p.connect()
            p.subscribe(self.room, "room")
            act(p.conn)
            index, error = p.wait_for(f"ERROR after {what}", lambda e: e["kind"] == "ERROR", stop_on_close=False)
            expect(error["frame"].headers.get("message"), f"ERROR frame without a message header: {describe(error)}")
            p.wait_for(f"socket close after the ERROR for {what}", lambda e: e["kind"] == "CLOSE", start=index + 1, stop_on_close=False)
            results.append(f"{what} -> ERROR message {error['frame'].headers['message']!r}, then the socket closed")
        return "; ".join(results)

    def run_all(self):
        self.run("a: connect both instances, STOMP 1.2 (no sub-protocol offered)", self.connect_both)
        connected = self.failures == 0
        for name, body in (
            ("b: subscribe with receipts, send across instances with seq", self.round_trip),
            ("c: heart-beats both ways over 7 s idle", self.heartbeats),
            ("c2: server heart-beats within the agreed interval", self.heartbeat_interval),
            ("d: large frame (4000 Korean chars) in one WebSocket message", self.large_frame),
            ("e: resume with last-seq, no gap, no duplicate", self.resume),
            ("f: business error on /user/queue/errors, connection stays open", self.business_error),
            ("g: protocol errors (ACK, unknown command) answered with ERROR, then close", self.protocol_error),
        ):
            if connected:
                self.run(name, body)
            else:
                self.report(name, False, "not run: check a failed")
        for p in self.peers:
            p.stop()


def read_config(arg):
    text = arg if arg.strip().startswith("{") or not os.path.exists(arg) else open(arg, encoding="utf-8").read()
    config = json.loads(text)
    for key in ("ws1", "ws2", "renter_token", "owner_token", "renter_id", "owner_id", "room", "other_room"):
        if key not in config:
            sys.exit(f'config: missing "{key}"')
    return config


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: stomp_py_check.py CONFIG_JSON (or a path to it)")
    checks = Checks(read_config(sys.argv[1]))

    def overrun():
        checks.report("whole run", False, f"did not finish within {WHOLE_RUN_S:.0f} s")
        os._exit(1)

    watchdog = threading.Timer(WHOLE_RUN_S, overrun)
    watchdog.daemon = True
    watchdog.start()
    checks.run_all()
    watchdog.cancel()
    # stomp.py's threads may linger on closed sockets; nothing is left to wait for.
    sys.stdout.flush()
    os._exit(0 if checks.failures == 0 else 1)


if __name__ == "__main__":
    main()
