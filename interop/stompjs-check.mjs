// Interoperability checks of the chat server's STOMP over WebSocket with @stomp/stompjs.
//
// Usage: node interop/stompjs-check.mjs CONFIG_JSON
//   CONFIG_JSON (the JSON text, or a path to a file holding it; interop/setup-fixture.sh
//   prints one): {"ws1","ws2","http1","renter_token","owner_token","renter_id","owner_id",
//   "room","other_room"}, other_room being a room the renter is not a member of.
//
// Prints one JSON line per check, {"check","ok","detail"}, and exits 0 only if all pass.

import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const WAIT_MS = 5000;
const WHOLE_RUN_MS = 40000;
const IDLE_MS = 7000;
const HEARTBEAT_MS = 1000; // what the clients offer and ask for, both ways
// The server's heart-beats are judged by their mean gap, which must be within the agreed
// interval (plus this much for timers), and their longest gap, which must stay below the
// tolerance of common clients (stomp.py drops a connection silent for 1.5 intervals): a
// server that is late every time fails the first, one scheduling hiccup on a busy machine
// does not.
const HEARTBEAT_SLACK_MS = 50;
const HEARTBEAT_TOLERANCE = 1.5;
const ERROR_DESTINATION = '/user/queue/errors';
const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

const config = readConfig(process.argv[2]);
const roomDestination = `/rooms/${config.room}`;
const runId = randomBytes(4).toString('hex');

function readConfig(arg) {
  if (!arg) {
    console.error('usage: node stompjs-check.mjs CONFIG_JSON (or a path to it)');
    process.exit(2);
  }
  const text = arg.trim().startsWith('{') || !existsSync(arg) ? arg : readFileSync(arg, 'utf8');
  const parsed = JSON.parse(text);
  for (const key of ['ws1', 'ws2', 'renter_token', 'owner_token', 'renter_id', 'owner_id', 'room', 'other_room']) {
    if (parsed[key] === undefined) {
      console.error(`config: missing "${key}"`);
      process.exit(2);
    }
  }
  return parsed;
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

class CheckFailed extends Error {}

function fail(detail) {
  throw new CheckFailed(detail);
}

function expect(condition, detail) {
  if (!condition) fail(detail);
}

// One STOMP client with everything it received kept in order, so a check can wait for
// "the next frame matching X" and say what came instead when it does not arrive.
class Peer {
  constructor(name, url, token, options = {}) {
    this.name = name;
    this.url = url;
    this.socket = undefined;
    this.frames = []; // {kind: 'MESSAGE'|'RECEIPT'|'ERROR'|'CLOSE', frame?, at}
    this.heartbeatsIn = []; // arrival times
    this.sent = []; // every WebSocket message sent, as text
    this.closed = undefined; // the close event, once closed
    this.log = [];
    this.waiters = new Set();
    this.counter = 0;
    this.client = new Client({
      webSocketFactory: () => {
        const socket = new WebSocket(url, SUBPROTOCOLS);
        const send = socket.send.bind(socket);
        socket.send = data => {
          this.sent.push(typeof data === 'string' ? data : new TextDecoder().decode(data));
          send(data);
        };
        this.socket = socket;
        return socket;
      },
      connectHeaders: { passcode: token },
      heartbeatIncoming: HEARTBEAT_MS,
      heartbeatOutgoing: HEARTBEAT_MS,
      reconnectDelay: 0,
      connectionTimeout: WAIT_MS,
      debug: line => this.remember(line),
      onUnhandledMessage: frame => this.push('MESSAGE', frame),
      onUnhandledReceipt: frame => this.push('RECEIPT', frame),
      onStompError: frame => this.push('ERROR', frame),
      onHeartbeatReceived: () => this.heartbeatsIn.push(Date.now()),
      onWebSocketClose: event => {
        this.closed = event;
        this.push('CLOSE', undefined, `code ${event.code}`);
      },
      ...options,
    });
  }

  remember(line) {
    this.log.push(line.length > 300 ? `${line.slice(0, 300)}…` : line);
    if (this.log.length > 40) this.log.shift();
  }

  push(kind, frame, note) {
    this.frames.push({ kind, frame, note, at: Date.now() });
    for (const waiter of [...this.waiters]) waiter();
  }

  // Resolves with the first frame from index `from` on that matches; rejects on timeout, or
  // when the socket closes first (unless a CLOSE is what is awaited).
  waitFor(description, match, { from = 0, timeout = WAIT_MS, cancel } = {}) {
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        for (let i = from; i < this.frames.length; i += 1) {
          const entry = this.frames[i];
          if (match(entry)) {
            done();
            resolve({ ...entry, index: i });
            return;
          }
          if (entry.kind === 'CLOSE' || entry.kind === 'ERROR') {
            done();
            reject(new CheckFailed(`${this.name}: got ${describe(entry)} while waiting for ${description}`));
            return;
          }
        }
      };
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      if (cancel) cancel.done = done;
      timer = setTimeout(() => {
        done();
        reject(new CheckFailed(`${this.name}: no ${description} within ${timeout} ms; last frames: ${this.recent()}`));
      }, timeout);
      this.waiters.add(check);
      check();
    });
  }

  recent() {
    return this.frames.slice(-5).map(describe).join(' | ') || 'none';
  }

  connect() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new CheckFailed(`${this.name}: no CONNECTED from ${this.url} within ${WAIT_MS} ms; log: ${this.log.slice(-5).join(' / ')}`));
      }, WAIT_MS);
      this.client.onConnect = frame => {
        clearTimeout(timer);
        this.connectedFrame = frame;
        resolve(frame);
      };
      this.client.onWebSocketError = () => {};
      const onClose = this.client.onWebSocketClose;
      this.client.onWebSocketClose = event => {
        onClose(event);
        clearTimeout(timer);
        const error = this.frames.find(e => e.kind === 'ERROR');
        const why = error ? `got ${describe(error)}` : `log: ${this.log.slice(-5).join(' / ')}`;
        reject(new CheckFailed(`${this.name}: socket to ${this.url} closed (code ${event.code}) before CONNECTED; ${why}`));
      };
      this.client.activate();
    });
  }

  nextReceipt() {
    this.counter += 1;
    return `${this.name}-${runId}-${this.counter}`;
  }

  async subscribe(destination, headers = {}) {
    const receipt = this.nextReceipt();
    const receipted = new Promise(resolve => this.client.watchForReceipt(receipt, resolve));
    const subscription = this.client.subscribe(destination, frame => this.push('MESSAGE', frame), { ...headers, receipt });
    await this.within(receipted, `RECEIPT ${receipt} for SUBSCRIBE ${destination}`);
    return subscription;
  }

  // Publishes with a receipt and resolves with the RECEIPT frame.
  async publish(destination, body, headers = {}) {
    const receipt = this.nextReceipt();
    const receipted = new Promise(resolve => this.client.watchForReceipt(receipt, resolve));
    this.client.publish({ destination, body, headers: { ...headers, receipt } });
    return this.within(receipted, `RECEIPT ${receipt} for SEND to ${destination}`);
  }

  // Awaits a promise, failing on timeout or as soon as the socket closes or an ERROR arrives.
  within(promise, description, timeout = WAIT_MS) {
    const cancel = {};
    const broken = this.waitFor(description, () => false, { from: this.frames.length, timeout, cancel });
    return Promise.race([promise, broken]).finally(() => cancel.done());
  }

  messageWithBody(body, options) {
    return this.waitFor(`MESSAGE with body ${abbreviate(body)}`, e => e.kind === 'MESSAGE' && e.frame.body === body, options);
  }

  roomMessages(from = 0) {
    return this.frames.slice(from).filter(e => e.kind === 'MESSAGE' && e.frame.headers.destination === roomDestination);
  }

  lastRoomSeq() {
    return Math.max(0, ...this.roomMessages().map(e => Number(e.frame.headers.seq)));
  }

  async stop() {
    try {
      await Promise.race([this.client.deactivate(), sleep(2000)]);
    } catch {
      // already gone
    }
  }
}

function describe(entry) {
  if (!entry.frame) return `${entry.kind}${entry.note ? ` (${entry.note})` : ''}`;
  const headers = Object.entries(entry.frame.headers)
    .map(([name, value]) => `${name}:${value}`)
    .join(', ');
  return `${entry.kind} {${headers}} ${abbreviate(entry.frame.body)}`;
}

function abbreviate(text, max = 80) {
  if (text === undefined) return '';
  const oneLine = JSON.stringify(text);
  return oneLine.length > max ? `${oneLine.slice(0, max)}…(${text.length} chars)` : oneLine;
}

function utf8Length(text) {
  return Buffer.byteLength(text, 'utf8');
}

// A 4000-character body of Hangul syllables, varied so a lost or repeated chunk shows.
function koreanBody(chars) {
  let body = '';
  for (let i = 0; i < chars; i += 1) body += String.fromCodePoint(0xac00 + ((i * 37) % 11172));
  return body;
}

// Checks that a MESSAGE carries what the server documents, and returns its seq.
function checkMessageHeaders(entry, { sender, seq }) {
  const h = entry.frame.headers;
  for (const name of ['destination', 'subscription', 'message-id', 'content-type', 'content-length', 'seq', 'room', 'sender', 'sent-at']) {
    expect(h[name] !== undefined, `MESSAGE has no ${name} header: ${describe(entry)}`);
  }
  expect(h.subscription === 'room', `MESSAGE subscription ${h.subscription}, expected room`);
  expect(h.destination === roomDestination, `MESSAGE destination ${h.destination}, expected ${roomDestination}`);
  expect(h.room === String(config.room), `MESSAGE room ${h.room}, expected ${config.room}`);
  expect(h.sender === String(sender), `MESSAGE sender ${h.sender}, expected ${sender}`);
  expect(Number(h['content-length']) === utf8Length(entry.frame.body), `MESSAGE content-length ${h['content-length']} but the body has ${utf8Length(entry.frame.body)} bytes`);
  if (seq !== undefined) expect(h.seq === String(seq), `MESSAGE seq ${h.seq}, expected ${seq} (from the RECEIPT)`);
  return Number(h.seq);
}

// ---------------------------------------------------------------------------------------

const peers = [];
const idleBeats = {};
let renter;
let owner;
let failures = 0;

function peer(name, url, token, options) {
  const p = new Peer(name, url, token, options);
  peers.push(p);
  return p;
}

function report(check, ok, detail) {
  if (!ok) failures += 1;
  console.log(JSON.stringify({ check, ok, detail }));
}

async function run(check, body) {
  try {
    report(check, true, await body());
  } catch (e) {
    report(check, false, e instanceof CheckFailed ? e.message : `${e?.stack ?? e}`);
  }
}

async function connectBoth() {
  renter = peer('renter', config.ws1, config.renter_token);
  owner = peer('owner', config.ws2, config.owner_token);
  const [renterConnected, ownerConnected] = await Promise.all([renter.connect(), owner.connect()]);
  const seen = [];
  for (const [p, frame, userId] of [
    [renter, renterConnected, config.renter_id],
    [owner, ownerConnected, config.owner_id],
  ]) {
    expect(frame.headers.version === '1.2', `${p.name}: CONNECTED version ${frame.headers.version}, expected 1.2`);
    expect(p.socket.protocol === 'v12.stomp', `${p.name}: WebSocket sub-protocol "${p.socket.protocol}", expected v12.stomp`);
    expect(frame.headers['user-name'] === String(userId), `${p.name}: CONNECTED user-name ${frame.headers['user-name']}, expected ${userId}`);
    expect(/^\d+,\d+$/.test(frame.headers['heart-beat'] ?? ''), `${p.name}: CONNECTED heart-beat "${frame.headers['heart-beat']}"`);
    seen.push(`${p.name} on ${p.url}: version ${frame.headers.version}, sub-protocol ${p.socket.protocol}, heart-beat ${frame.headers['heart-beat']}`);
  }
  return seen.join('; ');
}

// From `from` to `to`: publish with a receipt, and see the MESSAGE arrive at `to`.
async function relayOnce(from, fromId, to, label) {
  const body = `${label} ${runId} ${Date.now()}`;
  const receipt = await from.publish(roomDestination, body);
  const seq = receipt.headers.seq;
  expect(/^\d+$/.test(seq ?? ''), `${from.name}: SEND RECEIPT without a seq header: ${describe({ kind: 'RECEIPT', frame: receipt })}`);
  const got = await to.messageWithBody(body);
  checkMessageHeaders(got, { sender: fromId, seq });
  return `${from.name} -> ${to.name}: RECEIPT seq ${seq}, MESSAGE seq ${got.frame.headers.seq}`;
}

async function roundTrip() {
  await Promise.all([renter.subscribe(roomDestination, { id: 'room' }), owner.subscribe(roomDestination, { id: 'room' })]);
  const there = await relayOnce(renter, config.renter_id, owner, 'renter to owner');
  const back = await relayOnce(owner, config.owner_id, renter, 'owner to renter');
  return `${there}; ${back}`;
}

async function heartbeats() {
  const before = { renter: renter.frames.length, owner: owner.frames.length };
  const beatsBefore = { renter: renter.heartbeatsIn.length, owner: owner.heartbeatsIn.length };
  await sleep(IDLE_MS);
  const details = [];
  for (const p of [renter, owner]) {
    const during = p.frames.slice(before[p.name]);
    expect(!p.closed, `${p.name}: connection closed while idle: ${during.map(describe).join(' | ')}`);
    expect(!during.some(e => e.kind === 'ERROR'), `${p.name}: ERROR while idle: ${during.map(describe).join(' | ')}`);
    expect(p.client.connected, `${p.name}: no longer connected after ${IDLE_MS} ms idle`);
    const beats = p.heartbeatsIn.slice(beatsBefore[p.name]);
    idleBeats[p.name] = beats;
    // 3 at the agreed 2000 ms; check c2 judges their spacing.
    expect(beats.length >= 2, `${p.name}: ${beats.length} heart-beats received from the server in ${IDLE_MS} ms, expected at least 2`);
    const longest = Math.max(...beats.slice(1).map((at, i) => at - beats[i]));
    details.push(`${p.name}: ${beats.length} server heart-beats, at most ${longest} ms apart`);
  }
  // Our heart-beats kept the server from closing us (it allows 3 x 2000 ms of silence);
  // a message after the idle time shows both connections still carry traffic.
  await relayOnce(renter, config.renter_id, owner, 'after idle');
  return `${details.join('; ')}; still connected, relay works after the idle time`;
}

// STOMP 1.2: the server sends something at least every max(its sx, our incoming) ms.
async function heartbeatInterval() {
  const details = [];
  for (const p of [renter, owner]) {
    const serverSends = Number((p.connectedFrame.headers['heart-beat'] ?? '0,0').split(',')[0]);
    const agreed = Math.max(serverSends, HEARTBEAT_MS);
    const beats = idleBeats[p.name] ?? [];
    expect(beats.length >= 2, `${p.name}: too few heart-beats in check c to measure their interval`);
    const gaps = beats.slice(1).map((at, i) => at - beats[i]);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    expect(
      mean <= agreed + HEARTBEAT_SLACK_MS && Math.max(...gaps) <= agreed * HEARTBEAT_TOLERANCE,
      `${p.name}: the server's heart-beats came ${gaps.join(', ')} ms apart while idle (mean ${mean.toFixed(0)}); the agreed interval is ${agreed} ms (CONNECTED heart-beat ${p.connectedFrame.headers['heart-beat']}, client heart-beat ${HEARTBEAT_MS},${HEARTBEAT_MS}): the mean may exceed it by ${HEARTBEAT_SLACK_MS} ms, no gap by more than ${HEARTBEAT_TOLERANCE}x`,
    );
    details.push(`${p.name}: ${gaps.join(', ')} ms apart (agreed ${agreed})`);
  }
  return details.join('; ');
}

async function splitLargeFrame() {
  const splitter = peer('renter-split', config.ws1, config.renter_token, {
    splitLargeFrames: true,
    maxWebSocketChunkSize: 1024,
  });
  await splitter.connect();
  const body = koreanBody(4000);
  const mark = splitter.sent.length;
  const receipt = await splitter.publish(roomDestination, body);
  const chunks = splitter.sent.slice(mark).filter(text => text !== '\n');
  // stompjs cuts the serialized frame every 1024 UTF-16 units (about 3 KB of Hangul each).
  const frameUnits = chunks.reduce((n, c) => n + c.length, 0);
  expect(
    chunks.length > 1 && chunks.length === Math.ceil(frameUnits / 1024) && chunks.every(c => c.length <= 1024),
    `the client did not split the frame as configured: ${chunks.length} WebSocket messages of ${chunks.map(c => c.length)} UTF-16 units`,
  );
  expect(/^\d+$/.test(receipt.headers.seq ?? ''), `SEND RECEIPT without seq: ${describe({ kind: 'RECEIPT', frame: receipt })}`);
  const got = await owner.messageWithBody(body).catch(async e => {
    const near = owner.roomMessages().slice(-1)[0];
    if (near && near.frame.body.length > 1000) {
      fail(`owner got a MESSAGE of ${near.frame.body.length} chars that differs from the 4000 sent: ${describe(near)}`);
    }
    throw e;
  });
  checkMessageHeaders(got, { sender: config.renter_id, seq: receipt.headers.seq });
  await splitter.stop();
  const bytes = utf8Length(body);
  return `${body.length} chars (${bytes} bytes) sent as one SEND in ${chunks.length} WebSocket messages of ${chunks.map(c => utf8Length(c))} bytes; owner got it intact with seq ${got.frame.headers.seq}`;
}

async function resume() {
  const lastSeen = owner.lastRoomSeq();
  expect(lastSeen > 0, 'owner saw no room message before resuming');
  await owner.stop();
  expect(owner.closed, 'owner: deactivate did not close the socket');

  const sent = [];
  for (let i = 1; i <= 3; i += 1) {
    const body = `missed ${i} ${runId}`;
    const receipt = await renter.publish(roomDestination, body);
    sent.push({ body, seq: receipt.headers.seq });
  }

  owner = peer('owner-resumed', config.ws2, config.owner_token);
  await owner.connect();
  const receipt = owner.nextReceipt();
  // How many frames had arrived when the RECEIPT came: the replay must be among them.
  const receiptAt = new Promise(resolve => owner.client.watchForReceipt(receipt, () => resolve(owner.frames.length)));
  owner.client.subscribe(roomDestination, frame => owner.push('MESSAGE', frame), { id: 'room', 'last-seq': String(lastSeen), receipt });
  const framesBeforeReceipt = await owner.within(receiptAt, `RECEIPT ${receipt} for SUBSCRIBE with last-seq ${lastSeen}`);
  const replayed = owner.frames.slice(0, framesBeforeReceipt).filter(e => e.kind === 'MESSAGE');
  const seqs = replayed.map(e => e.frame.headers.seq);
  const expected = sent.map(s => s.seq);
  expect(
    JSON.stringify(seqs) === JSON.stringify(expected),
    `after last-seq ${lastSeen} got seqs [${seqs}] before the RECEIPT, expected [${expected}]`,
  );
  replayed.forEach((e, i) => {
    expect(e.frame.body === sent[i].body, `replayed seq ${e.frame.headers.seq} has body ${abbreviate(e.frame.body)}, expected ${abbreviate(sent[i].body)}`);
    checkMessageHeaders(e, { sender: config.renter_id, seq: sent[i].seq });
  });

  // A live message next: exactly once, right after the replayed ones.
  const live = `live after resume ${runId}`;
  const liveReceipt = await renter.publish(roomDestination, live);
  await owner.messageWithBody(live);
  await sleep(300);
  const all = owner.roomMessages().map(e => e.frame.headers.seq);
  const wanted = [...expected, liveReceipt.headers.seq];
  expect(JSON.stringify(all) === JSON.stringify(wanted), `resumed owner got seqs [${all}], expected exactly [${wanted}] (no gap, no duplicate)`);
  return `last seen ${lastSeen}; replayed [${seqs}] before the RECEIPT, then live ${liveReceipt.headers.seq}; nothing twice`;
}

async function businessError() {
  await renter.subscribe(ERROR_DESTINATION, { id: 'errors' });
  const otherDestination = `/rooms/${config.other_room}`;
  const results = [];
  for (const [what, act] of [
    ['SEND', () => renter.client.publish({ destination: otherDestination, body: `not a member ${runId}` })],
    ['SUBSCRIBE', () => renter.client.subscribe(otherDestination, frame => renter.push('MESSAGE', frame), { id: 'other-room' })],
  ]) {
    const from = renter.frames.length;
    act();
    const got = await renter.waitFor(`MESSAGE on ${ERROR_DESTINATION} after ${what} to ${otherDestination}`, e => e.kind === 'MESSAGE' && e.frame.headers.destination === ERROR_DESTINATION, { from });
    let body;
    try {
      body = JSON.parse(got.frame.body);
    } catch {
      fail(`error MESSAGE body is not JSON: ${describe(got)}`);
    }
    expect(body.error === 'room_not_found', `error MESSAGE after ${what} has error ${JSON.stringify(body.error)}, expected "room_not_found": ${describe(got)}`);
    expect(got.frame.headers.subscription === 'errors', `error MESSAGE subscription ${got.frame.headers.subscription}, expected errors`);
    results.push(`${what} -> room_not_found`);
  }
  expect(!renter.closed && renter.client.connected, 'renter: connection closed after a business error');
  const after = await relayOnce(renter, config.renter_id, owner, 'after a business error');
  return `${results.join(', ')} on ${ERROR_DESTINATION}; connection still open; ${after}`;
}

async function protocolError() {
  const bad = peer('renter-bad', config.ws1, config.renter_token);
  await bad.connect();
  await bad.subscribe(roomDestination, { id: 'room' });
  bad.client.ack('1-1', 'room');
  const error = await bad.waitFor('ERROR after ACK', e => e.kind === 'ERROR');
  expect(error.frame.headers.message, `ERROR frame without a message header: ${describe(error)}`);
  await bad.waitFor('socket close after ERROR', e => e.kind === 'CLOSE', { from: error.index + 1 });
  return `ACK -> ERROR message "${error.frame.headers.message}", then the socket closed (code ${bad.closed.code})`;
}

const watchdog = setTimeout(() => {
  report('whole run', false, `did not finish within ${WHOLE_RUN_MS} ms`);
  process.exit(1);
}, WHOLE_RUN_MS);

await run('a: connect both instances, STOMP 1.2 over v12.stomp', connectBoth);
const connected = failures === 0;
const checks = [
  ['b: subscribe with receipts, send across instances with seq', roundTrip],
  ['c: heart-beats both ways over 7 s idle', heartbeats],
  ['c2: server heart-beats within the agreed interval', heartbeatInterval],
  ['d: split large frame (4000 Korean chars in chunks of 1024 UTF-16 units)', splitLargeFrame],
  ['e: resume with last-seq, no gap, no duplicate', resume],
  ['f: business error on /user/queue/errors, connection stays open', businessError],
  ['g: protocol error (ACK) answered with ERROR, then close', protocolError],
];
for (const [name, body] of checks) {
  if (connected) await run(name, body);
  else report(name, false, 'not run: check a failed');
}

clearTimeout(watchdog);
await Promise.all(peers.map(p => p.stop()));
process.exit(failures === 0 ? 0 : 1);
