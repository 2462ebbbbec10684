// The web client: sign in (the session stays in an HttpOnly cookie), write a diary, manage
// friends, see notifications arrive live over server-sent events, and chat in a rental room
// over STOMP. No build step, no framework: what a browser runs as it is.
//
// What it shows is what it counts (window.app.state): every notification is shown once, by its
// `id:` (the recipient's seq), however often the stream delivers it; a stream that cannot open
// answers 200 with `retry:` and an `unavailable` event, so EventSource comes back by itself.
'use strict';

const state = {
  user: null,
  csrf: null,
  stream: null,
  seen: new Set(),
  shown: 0,
  duplicates: 0,
  opens: 0,
  unavailable: 0,
  lastId: null,
  chat: null,
  room: null,
  chatSeqs: new Set(),
};
window.app = { state };

const $ = (selector) => document.querySelector(selector);
const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

function setText(testId, text) {
  byTestId(testId).textContent = String(text);
}

function say(text) {
  setText('status', text);
}

function cookie(name) {
  const found = document.cookie.split(';').map((c) => c.trim()).find((c) => c.startsWith(`${name}=`));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : null;
}

// One call to the API, same origin, with the session cookie; a change also carries the CSRF
// token (the login answer's, or the `csrf` cookie after a reload).
async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') {
    const token = state.csrf || cookie('csrf');
    if (token) headers['X-CSRF-Token'] = token;
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text };
  }
  if (!response.ok) {
    const error = new Error((data && data.message) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function renderCounts() {
  setText('shown', state.shown);
  setText('duplicates', state.duplicates);
  setText('opens', state.opens);
  setText('unavailable', state.unavailable);
  setText('last-id', state.lastId ?? '-');
}

function show(notification) {
  const item = document.createElement('li');
  item.dataset.seq = String(notification.seq);
  item.textContent = `${notification.type} by user ${notification.actor_id} (#${notification.seq})`;
  $('#notifications').prepend(item);
}

function onNotification(event) {
  state.lastId = event.lastEventId;
  if (state.seen.has(event.lastEventId)) {
    state.duplicates += 1;
  } else {
    state.seen.add(event.lastEventId);
    state.shown += 1;
    show(JSON.parse(event.data));
  }
  renderCounts();
}

// The stream: the cookie authenticates it; `last_event_id` starts it right after what the page
// already shows; after that the browser resumes by itself with Last-Event-ID.
function openStream() {
  closeStream();
  const query = state.lastId ? `?last_event_id=${encodeURIComponent(state.lastId)}` : '';
  const stream = new EventSource(`/notifications/stream${query}`);
  state.stream = stream;
  setText('stream-state', 'connecting');
  stream.addEventListener('ready', (event) => {
    state.opens += 1;
    state.lastId = event.lastEventId || state.lastId;
    setText('stream-state', 'open');
    renderCounts();
  });
  stream.addEventListener('diary', onNotification);
  stream.addEventListener('comment', onNotification);
  stream.addEventListener('unavailable', (event) => {
    state.unavailable += 1;
    const { retry_ms: retry } = JSON.parse(event.data);
    setText('stream-state', `server unavailable: back in ${Math.round(retry / 100) / 10} s`);
    renderCounts();
  });
  stream.addEventListener('displaced', () => {
    stream.close();
    setText('stream-state', 'closed: this user opened too many streams elsewhere');
  });
  stream.addEventListener('session-ended', () => {
    stream.close();
    setText('stream-state', 'closed: session ended');
    signedOut('Your session ended: sign in again.');
  });
  stream.onerror = () => {
    if (stream.readyState === EventSource.CLOSED) {
      // A refusal (401: the session is gone), not a passing failure.
      setText('stream-state', 'closed');
      api('GET', '/me').catch((e) => {
        if (e.status === 401) signedOut('Your session ended: sign in again.');
      });
    } else {
      setText('stream-state', 'reconnecting');
    }
  };
}

function closeStream() {
  if (state.stream) state.stream.close();
  state.stream = null;
  setText('stream-state', 'closed');
}

async function loadNotifications() {
  const page = await api('GET', '/notifications?limit=20');
  const items = (page.items || []).slice().reverse();
  for (const n of items) {
    const id = String(n.seq);
    if (state.seen.has(id)) continue;
    state.seen.add(id);
    state.shown += 1;
    show(n);
    if (!state.lastId || Number(id) > Number(state.lastId)) state.lastId = id;
  }
  renderCounts();
}

async function loadFriends() {
  const [friends, requests] = await Promise.all([api('GET', '/friends'), api('GET', '/friends/requests')]);
  const list = $('#friends');
  list.replaceChildren(
    ...(friends.items || friends).map((f) => {
      const item = document.createElement('li');
      item.textContent = `${f.display_name} (user ${f.user_id})`;
      return item;
    }),
  );
  const asking = $('#requests');
  asking.replaceChildren(
    ...(requests.items || requests).map((r) => {
      const item = document.createElement('li');
      item.textContent = `user ${r.from_user} `;
      const accept = document.createElement('button');
      accept.type = 'button';
      accept.textContent = 'Accept';
      accept.addEventListener('click', async () => {
        try {
          await api('POST', `/friends/requests/${r.id}/accept`);
          say(`You and user ${r.from_user} are friends.`);
          await loadFriends();
        } catch (e) {
          say(e.message);
        }
      });
      item.append(accept);
      return item;
    }),
  );
}

async function signedIn(user) {
  state.user = user;
  setText('who', `${user.display_name} (user ${user.id})`);
  $('#signin').hidden = true;
  $('#app').hidden = false;
  $('#signout').hidden = false;
  await loadNotifications().catch((e) => say(e.message));
  openStream();
  await loadFriends().catch((e) => say(e.message));
}

function signedOut(message) {
  closeStream();
  closeChat();
  state.user = null;
  state.csrf = null;
  setText('who', 'signed out');
  $('#signin').hidden = false;
  $('#app').hidden = true;
  $('#signout').hidden = true;
  if (message) say(message);
}

// Chat: a ticket of POST /auth/stream-ticket is CONNECT's passcode (a WebSocket cannot carry a
// header); a fresh one at every (re)connect, and the subscription resumes after the last seq.
function onChatMessage(message) {
  const seq = message.headers.seq;
  if (state.chatSeqs.has(seq)) return;
  state.chatSeqs.add(seq);
  const item = document.createElement('li');
  item.dataset.seq = seq;
  item.textContent = `user ${message.headers.sender}: ${message.body}`;
  $('#messages').append(item);
  setText('chat-count', state.chatSeqs.size);
}

function openRoom(room) {
  closeChat();
  state.room = room;
  state.chatSeqs = new Set();
  $('#messages').replaceChildren();
  setText('chat-count', 0);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const client = new StompJs.Client({
    brokerURL: `${scheme}://${location.host}/ws/chat`,
    heartbeatIncoming: 10000,
    heartbeatOutgoing: 10000,
    reconnectDelay: 1000,
    beforeConnect: async () => {
      // A fresh ticket for each connection; when none can be had now (the session store is
      // down), the last one, which still opens connections until it expires.
      try {
        const { ticket } = await api('POST', '/auth/stream-ticket', { purpose: 'chat' });
        client.connectHeaders = { passcode: ticket };
      } catch (e) {
        say(`chat: ${e.message}`);
      }
    },
  });
  client.onConnect = () => {
    setText('chat-state', 'open');
    if (byTestId('status').textContent.startsWith('chat:')) say('');
    const last = Math.max(0, ...[...state.chatSeqs].map(Number));
    client.subscribe(`/rooms/${room}`, onChatMessage, { 'last-seq': String(last) });
    client.subscribe('/user/queue/errors', (m) => say(m.headers.message || m.body));
  };
  client.onStompError = (frame) => say(`chat: ${frame.headers.message}`);
  client.onWebSocketClose = () => setText('chat-state', client.active ? 'reconnecting' : 'closed');
  state.chat = client;
  client.activate();
}

function closeChat() {
  if (state.chat) state.chat.deactivate();
  state.chat = null;
  setText('chat-state', 'closed');
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

$('#signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const { email, password, display_name: name } = formData(event.target);
  try {
    if (event.submitter && event.submitter.value === 'signup') {
      await api('POST', '/auth/signup', { email, password, display_name: name || email.split('@')[0] });
    }
    const login = await api('POST', '/auth/login', { email, password, cookie: true });
    state.csrf = login.csrf_token;
    say('Signed in.');
    await signedIn(login.user);
  } catch (e) {
    say(e.message);
  }
});

$('#signout').addEventListener('click', async () => {
  try {
    await api('POST', '/auth/logout');
  } catch (e) {
    say(e.message);
  }
  signedOut('Signed out.');
});

$('#diary-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    const diary = await api('POST', '/diaries', formData(event.target));
    event.target.reset();
    say(`Saved diary ${diary.id}.`);
  } catch (e) {
    say(e.message);
  }
});

$('#friend-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    await api('POST', '/friends/requests', { user_id: Number(formData(event.target).user_id) });
    say('Asked.');
  } catch (e) {
    say(e.message);
  }
});

$('#room-form').addEventListener('submit', (event) => {
  event.preventDefault();
  openRoom(Number(formData(event.target).room));
});

$('#message-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const { body } = formData(event.target);
  if (!state.chat || !state.chat.connected) {
    say('Open a room first.');
    return;
  }
  state.chat.publish({
    destination: `/rooms/${state.room}`,
    body,
    headers: { 'content-type': 'text/plain;charset=utf-8', 'idempotency-key': crypto.randomUUID() },
  });
  event.target.reset();
});

// Already signed in (the cookie outlives a reload)?
api('GET', '/me').then(signedIn, () => signedOut(''));
