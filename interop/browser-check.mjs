// A real browser held to the server: Debian's Chromium, headless, driven by playwright-core.
// The web client (served by the server at /app/) signs in, receives notifications caused on
// another instance, and chats, through a dropped connection, a killed instance and a Redis
// restart; then a page of another origin signs in and streams where CORS lists it, and is
// refused where it does not.
//
// Run by server/tests/api/chromium.rs, which owns the servers, the proxy in front of them and
// Redis. The two talk over stdio: this script prints `STEP <what>` when it needs the test to
// act (cause N notifications, drop connections, kill an instance, stop or start Redis) and
// reads one line back: `OK` or `ERR <why>`. It ends with `RESULT <json>` and exit code 0, or
// prints what failed and exits 1.
//
// Usage: node browser-check.mjs '<config json>'
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { chromium } from 'playwright-core';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const config = JSON.parse(process.argv[2]);
const log = (...parts) => console.error(`[browser-check ${new Date().toISOString().slice(11, 23)}]`, ...parts);

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function step(what) {
  log('asks the test to', what);
  process.stdout.write(`STEP ${what}\n`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== 'OK') throw new Error(`the test could not ${what}: ${done ? 'stdin closed' : value}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const counts = (page) => page.evaluate(() => {
  const s = window.app.state;
  return {
    shown: s.shown,
    duplicates: s.duplicates,
    opens: s.opens,
    unavailable: s.unavailable,
    lastId: s.lastId,
    readyState: s.stream ? s.stream.readyState : -1,
    streamState: document.querySelector('[data-testid="stream-state"]').textContent,
    chat: s.chatSeqs.size,
    chatState: document.querySelector('[data-testid="chat-state"]').textContent,
  };
});

// Waits until `predicate(counts)` holds; fails with the last counts after `timeoutMs`.
async function until(page, what, predicate, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await counts(page);
    if (predicate(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms; the page shows ${JSON.stringify(last)}`);
}

// The other member of the chat room, on another instance, with the same STOMP library a page
// uses (over the `ws` package).
async function writerClient() {
  const received = [];
  const client = new Client({
    brokerURL: config.writer_ws,
    connectHeaders: { passcode: config.writer_token },
    webSocketFactory: () => new WebSocket(config.writer_ws, ['v12.stomp']),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
  });
  await new Promise((resolve, reject) => {
    client.onConnect = resolve;
    client.onStompError = (f) => reject(new Error(`writer: ${f.headers.message}`));
    client.onWebSocketError = () => reject(new Error('writer: the WebSocket failed'));
    client.activate();
  });
  client.subscribe(`/rooms/${config.room}`, (m) => received.push(m.body), { 'last-seq': '0' });
  return { client, received };
}

async function sendAsWriter(writer, body) {
  await new Promise((resolve) => {
    const receipt = `r-${Math.random()}`;
    writer.client.watchForReceipt(receipt, resolve);
    writer.client.publish({ destination: `/rooms/${config.room}`, body, headers: { receipt } });
  });
}

async function main() {
  mkdirSync(config.out_dir, { recursive: true });
  const browser = await chromium.launch({
    executablePath: config.chromium,
    headless: true,
    // As root in a container, with no network beyond loopback: no sandbox, and none of the
    // background fetches Chromium would otherwise try (and fail) at every start.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const result = { steps: [] };
  const done = (what, extra = {}) => {
    log('done:', what, JSON.stringify(extra));
    result.steps.push({ what, ...extra });
  };
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const consoleErrors = [];
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(String(e)));

    // 1. Sign in through the form; the stream opens.
    await page.goto(`${config.web}/app/`);
    await page.fill('#signin-form input[name=email]', config.reader_email);
    await page.fill('#signin-form input[name=password]', config.password);
    await page.click('#signin-form button[value=signin]');
    await until(page, 'the stream opens after signing in', (c) => c.opens >= 1 && c.streamState === 'open');
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'session');
    check(session && session.httpOnly && session.sameSite === 'Lax', `session cookie: ${JSON.stringify(session)}`);
    check(await page.evaluate(() => !document.cookie.includes('session=')), 'the page script can read the session cookie');
    done('signed in', { opens: 1 });

    // 2. Notifications caused on the other instance arrive.
    await step('cause 10');
    await until(page, '10 notifications from the other instance', (c) => c.shown === 10);
    done('live across instances', { shown: 10 });

    // 3. Chat across instances: the page on one, the writer on the other.
    await page.fill('#room-form input[name=room]', String(config.room));
    await page.click('#room-form button');
    await until(page, 'the chat connects', (c) => c.chatState === 'open');
    const writer = await writerClient();
    await sendAsWriter(writer, 'hello from the other instance');
    await until(page, "the writer's message", (c) => c.chat === 1);
    await page.fill('#message-form input[name=body]', 'hello from the browser');
    await page.click('#message-form button');
    await until(page, 'the page sees its own message', (c) => c.chat === 2);
    const deadline = Date.now() + 10_000;
    while (!writer.received.includes('hello from the browser') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    check(writer.received.includes('hello from the browser'), `the writer got ${JSON.stringify(writer.received)}`);
    done('chat across instances', { chat: 2 });

    // 4. A dropped connection: the browser resumes by itself with Last-Event-ID.
    const before = await counts(page);
    await step('drop');
    await step('cause 10');
    await until(page, '20 notifications after a dropped connection', (c) => c.shown === 20 && c.opens > before.opens);
    done('dropped connection', { shown: 20 });

    // 5. The page's instance is killed; the proxy sends the next connections to the other one.
    const beforeKill = await counts(page);
    await step('kill');
    await step('cause 10');
    await until(page, '30 notifications after a killed instance', (c) => c.shown === 30 && c.opens > beforeKill.opens);
    await sendAsWriter(writer, 'after the kill');
    await until(page, 'the chat reconnects and resumes', (c) => c.chat === 3 && c.chatState === 'open', 30_000);
    done('killed instance', { shown: 30, chat: 3 });

    // 6. Redis (the session store) stops while the browser reconnects: the stream is told to
    // come back, and it does, by itself, once Redis is back.
    await step('redis-stop');
    await step('drop');
    const waiting = await until(page, 'an unavailable answer while Redis is down', (c) => c.unavailable >= 1, 30_000);
    await new Promise((r) => setTimeout(r, 4_000));
    const stillTrying = await counts(page);
    check(stillTrying.readyState !== 2, `EventSource gave up while Redis was down: ${JSON.stringify(stillTrying)}`);
    const beforeRedis = stillTrying.opens;
    await step('redis-start');
    await until(page, 'the stream opens again after Redis is back', (c) => c.opens > beforeRedis, 30_000);
    await step('cause 10');
    const final = await until(page, '40 notifications after a Redis restart', (c) => c.shown === 40);
    done('redis restart', { unavailable: waiting.unavailable, shown: 40 });

    // Nothing lost, nothing shown twice: the list holds seq 1..40 once each.
    const seqs = await page.$$eval('#notifications li', (items) => items.map((i) => Number(i.dataset.seq)));
    const sorted = [...seqs].sort((a, b) => a - b);
    check(sorted.length === 40 && sorted.every((s, i) => s === i + 1), `the list shows ${JSON.stringify(sorted)}`);
    check(final.duplicates === 0, `the stream delivered ${final.duplicates} notifications twice`);
    await page.screenshot({ path: join(config.out_dir, 'web-client.png'), fullPage: true });
    check(consoleErrors.length === 0 || consoleErrors.every((e) => /Failed to load resource|WebSocket|net::ERR/.test(e)),
      `errors in the page: ${consoleErrors.join(' | ')}`);
    result.web_client = { ...final, seqs: sorted.length };
    writer.client.deactivate();

    // 7. A page of another origin: allowed where CORS lists it, refused where it does not.
    for (const [name, origin, allowed] of [['listed', config.listed_origin, true], ['unlisted', config.unlisted_origin, false]]) {
      const other = await context.newPage();
      const query = new URLSearchParams({ api: config.api, email: config.reader_email, password: config.password });
      await other.goto(`${origin}/cross-origin.html?${query}`);
      await other.waitForFunction(() => window.result !== undefined, null, { timeout: 30_000 });
      const outcome = await other.evaluate(() => window.result);
      await other.screenshot({ path: join(config.out_dir, `cross-origin-${name}.png`), fullPage: true });
      if (allowed) {
        check(outcome.login === 'ok' && outcome.stream === 'ready', `${origin} (listed): ${JSON.stringify(outcome)}`);
      } else {
        check(outcome.login.startsWith('refused'), `${origin} (not listed) was let in: ${JSON.stringify(outcome)}`);
      }
      result[`cross_origin_${name}`] = outcome;
      done(`cross-origin ${name}`, outcome);
      await other.close();
    }
    console.log(`RESULT ${JSON.stringify(result)}`);
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`browser-check failed: ${e.stack || e}`);
    process.exit(1);
  },
);
