/*
 * chatp web client: plain JavaScript, no framework, no build step.
 *
 * It speaks the chat protocol of docs/PROTOCOL.md (version 2: it always
 * says HELLO:2) over a WebSocket at /ws of the page's own host, one
 * protocol line per text frame in each direction, without the newline.
 *
 * The server is a menu state machine (main menu -> 1 contacts -> a
 * conversation -> back ...). This client keeps:
 *   - S.srv: where the server is, learnt only from the lines it sends
 *     (START/END/READY markers), never from what we sent;
 *   - S.asked: the queue of "what I asked for" (one request at a time is
 *     sent; a request is answered by the server's next stable point, a
 *     chat message by its acknowledgement), so every line is read in the
 *     screen it belongs to;
 *   - S.ui: where the person wants to be. A navigator (pump) sends the
 *     next menu line that brings the server closer to it, whenever nothing
 *     is in flight. The same path serves a click, a reconnect (a resumed
 *     session starts at the main menu) and a reload.
 * Notifications (MESSAGE, BROADCAST, GROUP_MESSAGE, each maybe after its
 * MSG_ID) may come between any two lines and are taken out first.
 *
 * DOM contract (tests drive the page by these; keep them):
 *   body[data-screen]    login | contacts | conversation | broadcast | groups
 *                        | browse | group, set once the server is there and
 *                        the screen is filled; "loading" while the server is
 *                        being taken to another screen, "connecting" while a
 *                        stored session resumes after a reload. A reconnect
 *                        leaves it as it is.
 *   body[data-connected] yes | no (yes: a connection is open and, when logged
 *                        in, its session resumed)
 *   #login-view form#login-form input#login-username input#login-password
 *     input#invite-code (shown when the server says REGISTRATION:invite)
 *     button#login-button (submit) button#signup-button #login-error
 *   #app-view #me #status button#logout-button button#password-button
 *     form#password-form input#old-password input#new-password #password-result
 *   #tab-contacts #tab-groups #tab-browse (a click on the open one reloads it)
 *   input#contact-search button#contact-refresh  ul#contact-list > li[data-contact]  (the broadcast
 *     channel is li[data-contact="BROADCAST"]: BROADCAST is reserved, no user
 *     can be called so); in an li: button.open, .online when online (the li
 *     also has class online), .unread with the count when > 0;
 *     #contact-more with "… N more" when the server says so.
 *   ul#group-list > li[data-group-id] (button.open, .unread);
 *     form#create-group-form input#group-name input#group-description
 *     #create-result (a created group is listed in #group-list, not opened)
 *   input#browse-search ul#browse-list > li[data-group-id] (button.open,
 *     button.join when not a member); #browse-more, #browse-older/#browse-newer
 *   #chat-title ol#messages > li.message[data-msg-id when known]
 *     (.pending until acknowledged, .unconfirmed when the connection dropped
 *     before the acknowledgement, .failed when refused; children .time
 *     .sender .text .status); form#send-form input#message-input
 *     button#back-button; in a group button#members-button (fills
 *     ul#member-list, li[data-member] per member; #members-next/#members-prev
 *     page it) and button#leave-button. #notice (role=status) says what the
 *     server answered (joined, left, refusals).
 *
 * Own messages are sent one at a time, each after the previous one's
 * acknowledgement (SENT / BROADCAST_SENT / GROUP_SENT, or ERROR: refused);
 * acknowledgements carry no id, so a sent message has no data-msg-id.
 * Messages typed while disconnected wait and are sent after the resume (the
 * server never saw them); one on its way when the connection dropped is
 * marked not confirmed and never sent again by itself.
 *
 * Sections: 1 utilities, 2 storage, 3 state, 4 transport, 5 protocol
 * (authentication, screens, navigator), 6 messages and notifications,
 * 7 screens and rendering, 8 user actions, 9 start.
 */
(() => {
  'use strict';

  // ================================================================ 1. utilities

  const $ = (id) => document.getElementById(id);

  /** createElement with text only: never HTML. */
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k === 'dataset') Object.assign(e.dataset, v);
        else if (k === 'type' || k.startsWith('aria-') || k === 'role' || k === 'dir' || k === 'title' || k === 'tabindex') e.setAttribute(k, v === true ? '' : String(v));
        else e[k] = v;
      }
    }
    for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
    return e;
  }

  /**
   * Text from the server as it will be shown: C0 controls (but tab), DEL
   * and C1 controls become visible symbols; everything else (bidi controls
   * included) stays, isolated by <bdi>/dir=auto where it is shown.
   */
  function visible(s) {
    return String(s).replace(/[\u0000-\u0008\u000A-\u001F\u007F-\u009F]/g, (c) => {
      const n = c.charCodeAt(0);
      if (n < 0x20) return String.fromCharCode(0x2400 + n);
      if (n === 0x7f) return '\u2421';
      return '<U+' + n.toString(16).toUpperCase().padStart(4, '0') + '>';
    });
  }

  /** A user-supplied name, isolated from the text around it. */
  function bdi(text, cls) {
    return el('bdi', { class: cls, text: visible(text) });
  }

  const utf8 = new TextEncoder();
  const byteLength = (s) => utf8.encode(s).length;

  /** Characters the server drops when it compares names (protocol::is_invisible). */
  const INVISIBLE = /[\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180E\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF9-\uFFFB\u{1D173}-\u{1D17A}\u{E0000}-\u{E007F}]/gu;
  /** A name as people read it (protocol::username_key): NFKC, invisible dropped, lower case. */
  const nameKey = (s) => s.normalize('NFKC').replace(INVISIBLE, '').toLowerCase().normalize('NFKC');

  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'long' });
  const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

  /** <time class="time"> in the browser's time zone. */
  function timeEl(date) {
    const t = el('time', { class: 'time' });
    if (!(date instanceof Date) || Number.isNaN(date.getTime())) return t;
    t.dateTime = date.toISOString();
    t.title = fullFmt.format(date);
    const now = new Date();
    const today = date.getFullYear() === now.getFullYear() && date.getMonth() === now.getMonth() && date.getDate() === now.getDate();
    t.textContent = today ? timeFmt.format(date) : dateTimeFmt.format(date);
    return t;
  }

  /**
   * A history row: "[YYYY-MM-DD HH:MM:SSZ] <sender>: <text>" (protocol 2
   * gives UTC with the Z; without it the time is taken as local).
   * Senders cannot contain ':', so the first ": " ends the sender.
   */
  function parseHistoryRow(row) {
    const m = /^\[(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(Z?)\] ([^:]*): ?([\s\S]*)$/.exec(row);
    if (!m) return { time: null, sender: '', text: row };
    const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
    const time = m[7] ? new Date(Date.UTC(y, mo - 1, d, h, mi, s)) : new Date(y, mo - 1, d, h, mi, s);
    return { time, sender: m[8], text: m[9] };
  }

  /** "TOKEN:body" -> [TOKEN, body]; a line without ':' -> [line, null]. */
  function splitToken(line) {
    const i = line.indexOf(':');
    return i < 0 ? [line, null] : [line.slice(0, i), line.slice(i + 1)];
  }

  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

  // ================================================================= 2. storage

  /*
   * sessionStorage (this tab only): the session token, the highest message
   * ids shown per kind (what RESUME sends), where the person was, and their
   * messages that are not known to be stored (shown again after a reload).
   */
  const STORE_KEY = 'chatp.session.v1';
  const storage = {
    load() {
      try { return JSON.parse(sessionStorage.getItem(STORE_KEY) || 'null'); } catch { return null; }
    },
    save() {
      if (!S.username) return;
      const own = S.own.filter((m) => m.state !== 'sent').slice(-200)
        .map(({ chat, text, state, at, note }) => ({ chat, text, state, at, note }));
      const data = { username: S.username, token: S.token, last: S.last, ui: uiForStorage(), own };
      try { sessionStorage.setItem(STORE_KEY, JSON.stringify(data)); } catch { /* full or denied: resume still works in memory */ }
    },
    clear() {
      try { sessionStorage.removeItem(STORE_KEY); } catch { /* ignore */ }
    },
  };
  let saveTimer = 0;
  function persistSoon() {
    if (!saveTimer) saveTimer = setTimeout(() => { saveTimer = 0; storage.save(); }, 200);
  }
  function persistNow() {
    clearTimeout(saveTimer);
    saveTimer = 0;
    storage.save();
  }

  // =================================================================== 3. state

  const BACKOFF_BASE_MS = 100;   // as chat_client: exponential, full jitter
  const BACKOFF_CAP_MS = 5000;
  const FRESH_AUTH_MS = 20000;   // an unauthenticated connection is closed by the server after 30 s
  const MATCH_WINDOW_MS = 120000; // own pending messages: history rows this recent may be them
  const RACE_WINDOW_MS = 5000; // a notification racing the history is among its last seconds
  const SEARCH_SUFFIX = '\u200B'; // see contactSearchLine
  const BROADCAST = 'BROADCAST';
  const TEXT = {
    notMemberOfGroup: 'You are not a member of this group',
    signupClosed: 'Sign-up is closed on this server; ask an administrator for an account',
    inviteRequired: 'Sign-up needs an invite code; ask an administrator for one',
    resumeRefused: 'Session expired or unknown; please log in',
    tooManyResumes: 'Too many resumes; wait a few seconds and try again',
    authUnavailable: 'Service temporarily unavailable, please try again',
    authBusy: 'Server busy, please try again in a moment',
    tooManyWrong: 'Too many wrong passwords; this session was ended',
  };

  function freshSrv() {
    return {
      screen: 'none',   // auth | loading | menu | contacts | conversation | broadcast | mygroups | mygroups-empty
                        // | browse | browse-empty | group | create-name | create-enter | password
      block: null,      // rows being read: menu | contacts | history | mygroups | browse | members
      buf: null,        // what the block has gathered
      contact: null,    // conversation
      groupId: null, groupName: null,
      createdId: null,
      contactSearch: '', contactNoMatch: null, pendingNoMatch: null,
      browseView: { search: '', page: 0 }, browseNoMatch: null, pendingBrowseNoMatch: null,
    };
  }

  const S = {
    // session
    username: null,
    token: null,
    session: false,        // logged in (maybe between two connections)
    last: { private: 0, broadcast: 0, group: 0 },
    seen: new Set(),       // "kind:id" of every notification shown
    nextId: null,          // the MSG_ID for the next notification
    registration: null,    // open | invite | closed
    ended: null,           // SESSION_END text: no resume
    loggingOut: false,
    // connection
    conn: null,
    connSeq: 0,
    backoff: 0,
    reconnectTimer: 0,
    lostSince: 0,
    resumeWanted: false,
    restoring: false,      // after a resume, until the person is back where they were
    replayed: 0,
    authRequest: null,     // {mode, username, password, invite} of the login form
    // server and requests
    srv: freshSrv(),
    asked: [],             // what I asked for, oldest first
    actions: [],           // one-off lines to send at a given screen (join, leave, password...)
    navSteps: 0,
    navTarget: '',
    navBlocked: false,     // navigation went round in circles: wait for the person
    lastNavAt: 0,          // when the last menu line went out
    listSerial: 0,         // lists received so far, on every connection (a "fresh" list is one after a click)
    // the person
    ui: { screen: 'contacts', chat: null, contactSearch: '', browseSearch: '', browsePage: 0, minSerial: 0 },
    arrived: false,
    arrivedKey: '',
    focusOnArrival: null,
    own: [],               // own messages: {lid, chat, text, state, at, note, li}
    ownSeq: 0,
    unread: new Map(),     // private, by sender
    groupUnread: new Map(),// by group name
    broadcastUnread: 0,
    contacts: { rows: [], more: 0, matches: null, loaded: false },
    myGroups: { rows: [], empty: null },
    browse: { rows: [], more: 0, matches: null, page: 0, pages: 0, empty: null },
    members: { rows: [], page: 1, pages: 1, more: 0 },
    membersOpen: false,
    focusMembers: false,
    chatDom: null,         // what #messages shows: {key, type, contact, id, name, loading, buffer, rows, matchUntil}
    creating: null,
  };

  function uiForStorage() {
    const u = S.ui;
    return { screen: u.screen, chat: u.chat, contactSearch: u.contactSearch, browseSearch: u.browseSearch, browsePage: u.browsePage };
  }

  // =============================================================== 4. transport

  const wsUrl = () => (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';

  /** Opens a connection; the protocol starts with the server's AUTH_REQUEST. */
  function openConnection() {
    dropConnection();
    const conn = { id: ++S.connSeq, ws: null, phase: 'opening', openedAt: Date.now(), draining: false };
    S.conn = conn;
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (e) {
      S.conn = null;
      setTimeout(() => onClosed(conn, null), 0);
      return;
    }
    conn.ws = ws;
    ws.onopen = () => {
      if (S.conn !== conn) return;
      conn.phase = 'auth-wait';
    };
    ws.onmessage = (ev) => {
      if (S.conn !== conn || typeof ev.data !== 'string') return;
      // One line per frame; split defensively should a frame hold more.
      for (const line of ev.data.replace(/\r?\n$/, '').split(/\r?\n/)) {
        try { onLine(line); } catch (e) { console.error('chatp: line not handled:', line, e); }
        if (S.conn !== conn) break;
      }
    };
    ws.onclose = (ev) => {
      if (S.conn !== conn) return;
      S.conn = null;
      onClosed(conn, ev);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  /** Forgets the current connection without reacting to its end. */
  function dropConnection() {
    const c = S.conn;
    S.conn = null;
    if (c && c.ws) {
      const ws = c.ws;
      ws.onclose = ws.onmessage = ws.onerror = null;
      if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(1000);
      else {
        ws.onopen = null;
        try { ws.close(1000); } catch { /* ignore */ }
      }
    }
  }

  function rawSend(line) {
    const c = S.conn;
    if (!c || !c.ws || c.ws.readyState !== WebSocket.OPEN) return false;
    c.ws.send(line);
    return true;
  }

  /** Sends the lines of one request and remembers what was asked. */
  function request(lines, entry) {
    for (const l of lines) if (!rawSend(l)) return false;
    S.asked.push(entry);
    return true;
  }

  function onClosed(conn, ev) {
    setConnected(false);
    // A message on its way when the connection ended: stored or not,
    // nobody can say. Shown as not confirmed, never sent again by itself.
    for (const a of S.asked) {
      if (a.type === 'msg') setOwnState(a.m, 'unconfirmed', 'Not confirmed: the connection dropped before the server answered. Check before sending it again.');
    }
    for (const a of S.asked) {
      if (a.line === '(password)') $('password-result').textContent = 'The connection dropped before the server answered: the password may or may not have changed.';
      if (a.line === '(create)') $('create-result').textContent = 'The connection dropped before the server answered: check My groups before creating it again.';
    }
    S.asked = [];
    S.srv = freshSrv();
    S.nextId = null;
    if (S.loggingOut) { finishLogout(); return; }
    if (S.ended) { endSession(S.ended); return; }
    if (S.session) {
      if (!S.token) {
        endSession('The connection was lost, and this session cannot be resumed (the server gave no token). Please log in again.');
        return;
      }
      scheduleReconnect(conn.draining);
      return;
    }
    // At the login form.
    if (S.resumeWanted && S.token) { scheduleReconnect(false); return; }
    if (S.authRequest) {
      S.authRequest = null;
      loginBusy(false);
      if (!$('login-error').textContent) loginError('The connection to the server was closed. Please try again.');
    }
    setStatus(conn.phase === 'opening' ? 'cannot reach the server' : 'not connected');
  }

  /** Reconnects after backoff (100 ms doubling to 5 s, full jitter) and resumes. */
  function scheduleReconnect(soon) {
    clearTimeout(S.reconnectTimer);
    if (!S.lostSince) S.lostSince = Date.now();
    S.backoff = soon ? BACKOFF_BASE_MS : Math.min(S.backoff ? S.backoff * 2 : BACKOFF_BASE_MS, BACKOFF_CAP_MS);
    const wait = Math.random() * S.backoff;
    const long = Date.now() - S.lostSince > 30000;
    setStatus(long ? 'reconnecting… (the server cannot be reached yet)' : 'reconnecting…');
    S.reconnectTimer = setTimeout(() => {
      S.reconnectTimer = 0;
      S.resumeWanted = true;
      openConnection();
    }, wait);
  }

  function reconnectNow() {
    if (S.reconnectTimer) {
      clearTimeout(S.reconnectTimer);
      S.reconnectTimer = 0;
      S.resumeWanted = true;
      openConnection();
    }
  }

  // ================================================================ 5. protocol

  const BARE = new Set(['AUTH_REQUEST', 'LOGIN_PROMPT', 'SIGNUP_PROMPT', 'MAIN_MENU_START', 'MAIN_MENU_END',
    'CONTACT_LIST_START', 'CONTACT_LIST_END', 'CONVERSATION_READY', 'MY_GROUPS_START', 'MY_GROUPS_END',
    'BROWSE_GROUPS_START', 'BROWSE_GROUPS_END', 'CREATE_GROUP_PROMPT', 'GROUP_CHAT_READY',
    'GROUP_MEMBERS_START', 'GROUP_MEMBERS_END', 'PASSWORD_PROMPT']);
  const TAGGED = new Set(['AUTH_SUCCESS', 'AUTH_FAILED', 'INVALID_OPTION', 'CONTACT_LIST_MORE', 'CONTACT_LIST_MATCHES',
    'BROWSE_GROUPS_MATCHES', 'CONTACT_NOT_FOUND', 'CONVERSATION_START', 'SENT', 'BROADCAST_START', 'BROADCAST_SENT',
    'NO_GROUPS', 'NOT_MEMBER', 'INVALID_SELECTION', 'BROWSE_GROUPS_MORE', 'GROUP_MEMBERS_MORE', 'BROWSE_GROUPS_PAGE',
    'GROUP_MEMBERS_PAGE', 'JOIN_SUCCESS', 'JOIN_FAILED', 'INVALID_COMMAND', 'CREATE_SUCCESS', 'CREATE_FAILED',
    'GROUP_CHAT_START', 'GROUP_SENT', 'LEAVE_RESULT', 'ERROR', 'HELLO', 'SESSION', 'MSG_ID', 'SERVER_SHUTDOWN',
    'UNREAD', 'REGISTRATION', 'SESSION_END', 'PASSWORD_CHANGED', 'PASSWORD_FAILED']);

  /** A notification line (section 6), as protocol::parse_notification reads it. */
  function parseNotification(line) {
    const [tok, rest] = splitToken(line);
    if (rest === null) return null;
    if (tok === 'MESSAGE') {
      const i = rest.indexOf(':');
      return i < 0 ? null : { kind: 'private', sender: rest.slice(0, i), text: rest.slice(i + 1), at: new Date() };
    }
    if (tok === 'BROADCAST') {
      const i = rest.indexOf(':');
      if (i < 0) return null;
      const r = rest.slice(i + 1);
      const j = r.lastIndexOf(':');
      if (j < 0 || !/^\d+$/.test(r.slice(j + 1))) return null;
      return { kind: 'broadcast', sender: rest.slice(0, i), text: r.slice(0, j), at: new Date(Number(r.slice(j + 1))) };
    }
    if (tok === 'GROUP_MESSAGE') {
      const i = rest.indexOf(':');
      if (i < 0) return null;
      const r = rest.slice(i + 1);
      const j = r.indexOf(':');
      if (j < 0) return null;
      return { kind: 'group', group: rest.slice(0, i), sender: r.slice(0, j), text: r.slice(j + 1), at: new Date() };
    }
    return null;
  }

  /** Every server line comes here, in order. */
  function onLine(line) {
    // Lines that may come at any moment are taken out of whatever is read.
    if (line.startsWith('MSG_ID:')) {
      const m = /^MSG_ID:(private|broadcast|group):(\d+)$/.exec(line);
      S.nextId = m ? { kind: m[1], id: Number(m[2]) } : null;
      return;
    }
    const n = parseNotification(line);
    if (n) {
      const id = S.nextId && S.nextId.kind === n.kind ? S.nextId.id : null;
      S.nextId = null;
      takeNotification(n, id);
      return;
    }
    S.nextId = null;
    const [tok0, body0] = splitToken(line);
    const bare = BARE.has(line);
    const tok = bare ? line : (body0 !== null && TAGGED.has(tok0) ? tok0 : null);
    const body = bare ? null : body0;
    switch (tok) {
      case 'SESSION':
        S.token = body;
        persistNow();
        return;
      case 'SERVER_SHUTDOWN':
        startDrain();
        return;
      case 'SESSION_END':
        // The server ends the session for good: no reconnect, no resume.
        S.ended = body;
        S.token = null;
        persistNow();
        setTimeout(() => { if (S.ended && S.conn) { dropConnection(); endSession(S.ended); } }, 3000);
        return;
      case 'UNREAD':
        onUnread(body);
        return;
      case 'REGISTRATION':
        onRegistration(body);
        return;
      default:
        break;
    }
    const c = S.conn;
    if (!c) return;
    if (c.phase !== 'session') onAuthLine(tok, body, line);
    else onScreenLine(tok, body, line);
  }

  // ------------------------------------------------------------ authentication

  function onAuthLine(tok, body, line) {
    const c = S.conn;
    switch (tok) {
      case 'AUTH_REQUEST':
        c.phase = 'hello';
        rawSend('HELLO:2');
        return;
      case 'HELLO':
        c.phase = 'hello-ok'; // REGISTRATION follows at once
        return;
      case 'LOGIN_PROMPT':
      case 'SIGNUP_PROMPT': {
        const r = S.authRequest;
        if (!r) { rawSend(''); return; } // nothing to say: an empty line closes the dialogue
        c.phase = 'checking';
        rawSend(r.username);
        rawSend(r.password);
        r.password = null;
        return;
      }
      case 'AUTH_SUCCESS':
        onAuthSuccess(body);
        return;
      case 'AUTH_FAILED':
        onAuthFailed(body);
        return;
      case 'ERROR':
        if (S.authRequest || c.phase === 'resuming') loginError(body);
        return;
      default:
        return; // nothing else belongs to authentication
    }
  }

  function onRegistration(mode) {
    S.registration = mode;
    const invite = mode === 'invite';
    $('invite-field').hidden = !invite;
    $('registration-note').textContent =
      mode === 'closed' ? 'Sign-up is closed on this server: an administrator makes accounts.'
        : invite ? 'Signing up needs an invite code from an administrator.' : '';
    const c = S.conn;
    if (!c || c.phase !== 'hello-ok') return;
    c.phase = 'auth-idle';
    if (!S.session) setConnected(true);
    if (S.resumeWanted && S.token && S.username) {
      // RESUME:<user>:<token>:<last private id>:<last broadcast id>:<last group id>
      S.resumeWanted = false;
      c.phase = 'resuming';
      S.replayed = 0;
      setStatus('resuming your session…');
      rawSend(`RESUME:${S.username}:${S.token}:${S.last.private}:${S.last.broadcast}:${S.last.group}`);
      return;
    }
    S.resumeWanted = false;
    if (!S.session) setStatus('connected');
    if (S.authRequest) startAuth();
  }

  /** The login form's request on a connection that is at authentication. */
  function startAuth() {
    const r = S.authRequest;
    const c = S.conn;
    if (!r || !c) return;
    if (r.mode === 'signup') {
      if (S.registration === 'closed') { authRefused(TEXT.signupClosed); return; }
      if (S.registration === 'invite') {
        if (!r.invite) { authRefused(TEXT.inviteRequired, 'invite-code'); return; }
        // The code goes first; the server answers nothing to it.
        rawSend('INVITE:' + r.invite);
      }
    }
    c.phase = 'credentials';
    rawSend(r.mode === 'signup' ? 'SIGNUP' : 'LOGIN');
  }

  function authRefused(text, focusId) {
    S.authRequest = null;
    loginBusy(false);
    loginError(text);
    if (focusId) $(focusId).focus();
  }

  function onAuthSuccess(text) {
    const c = S.conn;
    const resumed = c.phase === 'resuming';
    c.phase = 'session';
    S.session = true;
    S.ended = null;
    S.loggingOut = false;
    S.lostSince = 0;
    S.srv = freshSrv();
    // The main menu the server sends by itself answers this.
    S.asked = [{ type: 'nav', line: resumed ? 'RESUME' : 'LOGIN' }];
    if (resumed) {
      S.restoring = true;
      setStatus('resuming your session…');
    } else {
      const r = S.authRequest;
      S.authRequest = null;
      loginBusy(false);
      resetForNewSession(r ? r.username : S.username);
      $('login-password').value = '';
      $('invite-code').value = '';
      loginError('');
      if (/^Registration successful/.test(text)) notice(text);
      showApp();
      goTo('contacts', { focus: 'heading' });
    }
    persistNow();
  }

  function onAuthFailed(reason) {
    const c = S.conn;
    if (c.phase === 'hello') {
      // A server without protocol 2 refuses HELLO: this client needs it.
      loginError('This server does not speak protocol 2, which the web client needs. Use chat_client.');
      S.authRequest = null;
      loginBusy(false);
      dropConnection();
      setConnected(false);
      return;
    }
    if (c.phase === 'resuming') {
      c.phase = 'auth-idle';
      if (reason === TEXT.tooManyResumes || reason === TEXT.authUnavailable || reason === TEXT.authBusy) {
        // The token is still good: try again a little later.
        dropConnection();
        S.backoff = BACKOFF_CAP_MS;
        scheduleReconnect(false);
        return;
      }
      endSession(`Your session could not be resumed (${reason}). Please log in again.`, true);
      return;
    }
    c.phase = 'auth-idle';
    authRefused(reason);
    if (reason === TEXT.inviteRequired) $('invite-field').hidden = false;
  }

  /** A new login (not a resume): nothing of another session may show. */
  function resetForNewSession(username) {
    S.username = username;
    S.last = { private: 0, broadcast: 0, group: 0 };
    S.seen = new Set();
    S.unread = new Map();
    S.groupUnread = new Map();
    S.broadcastUnread = 0;
    S.own = [];
    S.chatDom = null;
    S.contacts = { rows: [], more: 0, matches: null, loaded: false };
    S.myGroups = { rows: [], empty: null };
    S.browse = { rows: [], more: 0, matches: null, page: 0, pages: 0, empty: null };
    S.ui = { screen: 'contacts', chat: null, contactSearch: '', browseSearch: '', browsePage: 0, minSerial: 0 };
    S.actions = [];
    S.arrivedKey = '';
    $('notice').textContent = '';
    $('contact-search').value = '';
    $('browse-search').value = '';
    $('messages').replaceChildren();
    $('contact-list').replaceChildren();
    $('group-list').replaceChildren();
    $('browse-list').replaceChildren();
    $('password-result').textContent = '';
    $('create-result').textContent = '';
    $('me').textContent = visible(username);
  }

  /** The session is over (refused resume, SESSION_END, lost without token): back to the login form. */
  function endSession(message, keepConnection) {
    const hadSession = S.session;
    S.session = false;
    S.token = null;
    S.ended = null;
    S.restoring = false;
    S.resumeWanted = false;
    clearTimeout(S.reconnectTimer);
    S.reconnectTimer = 0;
    S.asked = [];
    S.actions = [];
    for (const m of S.own) {
      if (m.state === 'queued' || m.state === 'inflight') setOwnState(m, m.state === 'queued' ? 'failed' : 'unconfirmed', 'Not sent: the session ended.');
    }
    storage.clear();
    if (!keepConnection) dropConnection();
    if (hadSession || !$('app-view').hidden) showLogin();
    loginError(message);
    setConnected(!!(S.conn && S.conn.phase === 'auth-idle'));
    setStatus(S.conn ? 'connected' : 'not connected');
  }

  // ------------------------------------------------------------------ draining

  /**
   * SERVER_SHUTDOWN: send nothing more; the server answers what it had,
   * then closes. A browser cannot half-close a WebSocket, so once every
   * request has its answer the client closes, and resumes elsewhere.
   */
  function startDrain() {
    const c = S.conn;
    if (!c) return;
    c.draining = true;
    setConnected(false);
    setStatus('the server is restarting; reconnecting…');
    maybeFinishDrain();
  }

  function maybeFinishDrain() {
    const c = S.conn;
    if (!c || !c.draining || S.asked.length) return;
    setTimeout(() => {
      if (S.conn === c && !S.asked.length) {
        S.conn = null;
        c.ws.onclose = c.ws.onmessage = null;
        try { c.ws.close(1000, 'drain'); } catch { /* ignore */ }
        onClosed(c, null);
      }
    }, 0);
  }

  // ------------------------------------------------------------------- screens

  /** Lines once logged in: markers move S.srv; rows fill the block being read. */
  function onScreenLine(tok, body, line) {
    const srv = S.srv;
    switch (tok) {
      // -- main menu
      case 'MAIN_MENU_START':
        startBlock('menu', 'loading', null);
        return;
      case 'MAIN_MENU_END':
        endBlock('menu');
        srv.screen = 'menu';
        if (S.asked[0] && (S.asked[0].line === 'RESUME' || S.asked[0].line === 'LOGIN')) loggedInAtMenu(S.asked[0].line === 'RESUME');
        stable();
        return;
      case 'INVALID_OPTION':
        notice(body);
        return;

      // -- contacts
      case 'CONTACT_LIST_START':
        startBlock('contacts', 'loading', { rows: [], more: 0, matches: null, broadcast: false });
        return;
      case 'CONTACT_LIST_MATCHES':
        if (srv.buf) srv.buf.matches = body.endsWith(SEARCH_SUFFIX) ? body.slice(0, -SEARCH_SUFFIX.length) : body;
        return;
      case 'CONTACT_LIST_MORE':
        if (srv.buf) srv.buf.more = Number(body) || 0;
        return;
      case 'CONTACT_LIST_END': {
        const buf = endBlock('contacts') || { rows: [], more: 0, matches: null };
        buf.loaded = true;
        srv.screen = 'contacts';
        srv.contactSearch = buf.matches || '';
        srv.contactNoMatch = srv.pendingNoMatch;
        srv.pendingNoMatch = null;
        S.listSerial++;
        S.contacts = buf;
        for (const r of buf.rows) S.unread.set(r.name, r.unread);
        renderContacts();
        stable();
        return;
      }
      case 'CONTACT_NOT_FOUND': {
        const head = S.asked[0];
        if (head && head.search !== undefined) srv.pendingNoMatch = head.search;
        else if (S.ui.screen === 'conversation' && head && head.line === S.ui.chat.contact) {
          notice(`${body}: ${S.ui.chat.contact}`);
          goTo('contacts', { focus: 'heading' });
        } else notice(body);
        return;
      }

      // -- chats: history then READY
      case 'CONVERSATION_START':
        startHistory({ type: 'conversation', contact: body });
        return;
      case 'BROADCAST_START':
        startHistory({ type: 'broadcast' });
        return;
      case 'GROUP_CHAT_START': {
        const i = body.lastIndexOf(':');
        startHistory({ type: 'group', name: body.slice(0, i), id: Number(body.slice(i + 1)) });
        return;
      }
      case 'CONVERSATION_READY':
      case 'GROUP_CHAT_READY':
        endHistory();
        stable();
        return;
      case 'SENT':
      case 'BROADCAST_SENT':
      case 'GROUP_SENT':
        acknowledged(tok, body);
        return;

      // -- groups
      case 'MY_GROUPS_START':
        startBlock('mygroups', 'loading', { rows: [], empty: null });
        return;
      case 'BROWSE_GROUPS_START':
        startBlock('browse', 'loading', { rows: [], more: 0, matches: null, page: 0, pages: 0, empty: null });
        return;
      case 'NO_GROUPS':
        if (srv.buf) srv.buf.empty = body;
        return;
      case 'BROWSE_GROUPS_MATCHES':
        if (srv.buf) srv.buf.matches = body;
        return;
      case 'BROWSE_GROUPS_PAGE': {
        const m = /^(\d+):(\d+)$/.exec(body);
        if (srv.buf && m) { srv.buf.page = Number(m[1]); srv.buf.pages = Number(m[2]); }
        return;
      }
      case 'BROWSE_GROUPS_MORE':
        if (srv.buf) srv.buf.more = Number(body) || 0;
        return;
      case 'MY_GROUPS_END': {
        const buf = endBlock('mygroups') || { rows: [], empty: null };
        // With no groups the server reads one line (any) and goes back to the menu.
        srv.screen = buf.empty ? 'mygroups-empty' : 'mygroups';
        S.listSerial++;
        S.myGroups = buf;
        renderMyGroups();
        stable();
        return;
      }
      case 'BROWSE_GROUPS_END': {
        const buf = endBlock('browse') || { rows: [], more: 0 };
        srv.screen = buf.empty ? 'browse-empty' : 'browse';
        srv.browseView = { search: buf.matches || '', page: buf.matches ? 0 : buf.page };
        srv.browseNoMatch = srv.pendingBrowseNoMatch || null;
        srv.pendingBrowseNoMatch = null;
        S.listSerial++;
        S.browse = buf;
        renderBrowse();
        stable();
        return;
      }
      case 'INVALID_SELECTION': {
        const head = S.asked[0];
        if (head && head.search !== undefined && head.screen === 'browse') srv.pendingBrowseNoMatch = head.search;
        else refusedGroup(body);
        return;
      }
      case 'NOT_MEMBER': {
        if (/join:GROUP_ID/.test(body)) body = 'You must join this group first: press its Join button.';
        const head = S.asked[0];
        if (head && head.type === 'msg') {
          // The sender is no longer a member: the chat closed; its list follows.
          S.asked.shift();
          setOwnState(head.m, 'failed', body);
          leftGroup(body);
          return;
        }
        refusedGroup(body);
        return;
      }
      case 'JOIN_SUCCESS':
      case 'JOIN_FAILED':
      case 'INVALID_COMMAND':
        notice(body);
        return;
      case 'CREATE_GROUP_PROMPT':
        srv.screen = 'create-name';
        stable();
        return;
      case 'CREATE_SUCCESS': {
        const i = body.lastIndexOf('|');
        const id = Number(body.slice(i + 1));
        srv.screen = 'create-enter';
        srv.createdId = id;
        const name = S.creating || '';
        S.creating = null;
        $('create-result').textContent = `${body.slice(0, i)}: ${visible(name)}`;
        $('group-name').value = '';
        $('group-description').value = '';
        // The server asks nothing but waits for an answer: "yes" would enter
        // the chat; the page shows My groups again (with the new one) and
        // answers "no" on the way there.
        goTo('groups', { fresh: true, focus: { group: id, list: 'group-list' } });
        stable();
        return;
      }
      case 'CREATE_FAILED':
        S.creating = null;
        $('create-result').textContent = body;
        return;
      case 'GROUP_MEMBERS_START':
        srv.block = 'members';
        srv.buf = { rows: [], page: 1, pages: 1, more: 0 };
        return;
      case 'GROUP_MEMBERS_PAGE': {
        const m = /^(\d+):(\d+)$/.exec(body);
        if (srv.buf && m) { srv.buf.page = Number(m[1]); srv.buf.pages = Number(m[2]); }
        return;
      }
      case 'GROUP_MEMBERS_MORE':
        if (srv.buf) srv.buf.more = Number(body) || 0;
        return;
      case 'GROUP_MEMBERS_END': {
        const buf = endBlock('members') || { rows: [], page: 1, pages: 1, more: 0 };
        S.members = buf;
        renderMembers();
        stable();
        return;
      }
      case 'LEAVE_RESULT':
        notice(body);
        if (body === TEXT.notMemberOfGroup) {
          stable(); // still in the chat; nothing follows
          return;
        }
        leftGroup(null); // the list the chat was opened from follows
        return;

      // -- password
      case 'PASSWORD_PROMPT':
        srv.screen = 'password';
        stable();
        return;
      case 'PASSWORD_CHANGED':
        $('password-result').textContent = body;
        $('old-password').value = '';
        $('new-password').value = '';
        togglePasswordForm(false);
        return;
      case 'PASSWORD_FAILED':
        $('password-result').textContent = body;
        if (body === TEXT.tooManyWrong) { S.ended = body; S.token = null; }
        return;

      case 'ERROR':
        onError(body);
        return;
      case 'AUTH_SUCCESS':
      case 'AUTH_FAILED':
      case 'HELLO':
        return;
      default:
        if (tok === null) row(line);
    }
  }

  function startBlock(block, screen, buf) {
    S.srv.block = block;
    S.srv.buf = buf;
    if (screen) S.srv.screen = screen;
  }

  function endBlock(block) {
    const srv = S.srv;
    const buf = srv.block === block ? srv.buf : null;
    srv.block = null;
    srv.buf = null;
    return buf;
  }

  /** A line between two markers. */
  function row(line) {
    const srv = S.srv;
    const buf = srv.buf;
    switch (srv.block) {
      case 'contacts': {
        const parts = line.split('|');
        if (parts[0] === BROADCAST && parts.length === 2) { buf.broadcast = true; return; }
        if (parts.length < 2) return;
        buf.rows.push({ name: parts[0], online: parts[1] === 'online', unread: Number(parts[2]) || 0 });
        return;
      }
      case 'history':
        buf.rows.push(parseHistoryRow(line));
        return;
      case 'mygroups':
      case 'browse': {
        // id|name|description|members|badge; read count and badge from the right.
        const a = line.indexOf('|');
        const b = line.indexOf('|', a + 1);
        const z = line.lastIndexOf('|');
        const y = line.lastIndexOf('|', z - 1);
        if (a < 0 || b < 0 || y <= b) return;
        const id = Number(line.slice(0, a));
        if (!Number.isInteger(id) || id <= 0) return;
        const badge = line.slice(z + 1);
        buf.rows.push({
          id, name: line.slice(a + 1, b), description: line.slice(b + 1, y), members: Number(line.slice(y + 1, z)) || 0,
          admin: badge === '👑', member: srv.block === 'mygroups' || badge === '✅ Member',
        });
        return;
      }
      case 'members': {
        const parts = line.split('|');
        if (parts.length < 2) return;
        buf.rows.push({ name: parts[0], admin: parts[1].includes('Admin'), joined: parts[2] || '' });
        return;
      }
      default:
        return; // menu text, or a line outside a block: nothing to show
    }
  }

  /** The server reached a point where it waits for a line: the request in flight is answered. */
  function stable() {
    const head = S.asked[0];
    if (head) {
      S.asked.shift();
      if (head.type === 'msg') {
        // A chat line the server did not take as a message (it was not in that chat).
        setOwnState(head.m, 'unconfirmed', 'Not confirmed: the server did not answer it as a message.');
      }
    }
    maybeFinishDrain();
    schedulePump();
  }

  function onError(text) {
    const head = S.asked[0];
    if (head && head.type !== 'msg' && /discarded/.test(text)) {
      // The server threw the line away: nothing else will answer it.
      S.asked.shift();
      notice(text);
      schedulePump();
      return;
    }
    if (head && head.type === 'msg') {
      // The answer to a message: it was not stored (or, for the one
      // "storage was lost" text, may have been).
      S.asked.shift();
      const unknown = /may have been stored/.test(text);
      setOwnState(head.m, unknown ? 'unconfirmed' : 'failed', text);
      maybeFinishDrain();
      schedulePump();
      return;
    }
    notice(text);
  }

  function loggedInAtMenu(resumed) {
    setConnected(true);
    setStatus('connected');
    S.backoff = 0;
    if (resumed && S.replayed) {
      announce(`${plural(S.replayed, 'message', 'messages')} arrived while you were away.`);
    }
    S.replayed = 0;
  }

  // ------------------------------------------------------------------ navigator

  /** Where the server should be for what the person looks at. */
  function goal() {
    const u = S.ui;
    switch (u.screen) {
      case 'contacts': return { screen: 'contacts', search: u.contactSearch, minSerial: u.minSerial };
      case 'conversation': return { screen: 'conversation', contact: u.chat.contact };
      case 'broadcast': return { screen: 'broadcast' };
      case 'groups': return { screen: 'mygroups', minSerial: u.minSerial };
      case 'browse': return { screen: 'browse', search: u.browseSearch, page: u.browsePage, minSerial: u.minSerial };
      case 'group': return { screen: 'group', id: u.chat.id, via: u.chat.via };
      default: return { screen: 'menu' };
    }
  }

  /**
   * Contact search: the typed start of a name is sent as the contact choice
   * with an invisible character (U+200B) after it. The server compares
   * names as people read them (NFKC, invisible characters dropped, lower
   * case), so the list is the same; but no user's name contains an
   * invisible character, so the line is never taken for an exact name
   * (which would open that conversation and mark it read) nor for BROADCAST
   * or back. PROTOCOL.md, section 8, "Finding people".
   */
  const contactSearchLine = (typed) => typed + SEARCH_SUFFIX;
  /** A start of a name no user can have: answered here, not asked. */
  const contactSearchLocal = (typed) => /[:|\u0000-\u001F\u007F-\u009F]/.test(typed) || [...typed].length > 50;
  /**
   * A group search the server would read as something else: an id, join:,
   * page:, back. Group names cannot contain ':' or '|'. Such text filters
   * the rows already listed instead.
   */
  const browseSearchLocal = (typed) => /[:|\u0000-\u001F\u007F-\u009F]/.test(typed) || typed === 'back' || isI32(typed);
  function isI32(s) {
    if (!/^[+-]?\d+$/.test(s)) return false;
    const n = Number(s);
    return n >= -2147483648 && n <= 2147483647;
  }

  function contactsOk(g) {
    const srv = S.srv;
    const want = g.search || '';
    if (contactSearchLocal(want)) return true;
    return srv.contactSearch === want || (want !== '' && srv.contactSearch === '' && srv.contactNoMatch === want);
  }

  /** What the browse list should be narrowed to by the server ('' for none). */
  function browseServerSearch(g) {
    const want = (g.search || '').trim();
    return want && !browseSearchLocal(want) ? want : '';
  }

  function browseOk(g) {
    const srv = S.srv;
    const want = browseServerSearch(g);
    const v = srv.browseView;
    if (srv.screen === 'browse-empty') return true;
    if (want) return v.search === want || (v.search === '' && !v.page && srv.browseNoMatch === want);
    if (g.page) return !v.search && v.page === g.page;
    return !v.search && !v.page;
  }

  /** Is the server where `g` wants it? */
  function at(g) {
    const srv = S.srv;
    const fresh = S.listSerial >= (g.minSerial || 0);
    switch (g.screen) {
      case 'menu': return srv.screen === 'menu';
      case 'contacts': return srv.screen === 'contacts' && fresh && contactsOk(g);
      case 'conversation': return srv.screen === 'conversation' && srv.contact === g.contact;
      case 'broadcast': return srv.screen === 'broadcast';
      case 'mygroups': return (srv.screen === 'mygroups' || srv.screen === 'mygroups-empty') && fresh;
      case 'browse': return (srv.screen === 'browse' || srv.screen === 'browse-empty') && (g.anyView || (fresh && browseOk(g)));
      case 'group': return srv.screen === 'group' && srv.groupId === g.id;
      case 'create-name': return srv.screen === 'create-name';
      case 'password': return srv.screen === 'password';
      default: return false;
    }
  }

  /** The next line that brings the server closer to `g`. */
  function nextStep(g) {
    const srv = S.srv;
    switch (srv.screen) {
      case 'menu':
        switch (g.screen) {
          case 'contacts': case 'conversation': return '1';
          case 'broadcast': return '2';
          case 'mygroups': return '3';
          case 'group': return g.via === 'browse' ? '4' : '3';
          case 'browse': return '4';
          case 'create-name': return '5';
          case 'password': return 'PASSWORD';
          default: return null;
        }
      case 'contacts':
        if (g.screen === 'conversation') return g.contact;
        if (g.screen === 'broadcast') return BROADCAST;
        if (g.screen === 'contacts') {
          const want = g.search || '';
          if (S.listSerial < (g.minSerial || 0) || want === '') return 'back'; // the full list: back, then 1
          return { line: contactSearchLine(want), search: want };
        }
        return 'back';
      case 'mygroups':
        if (g.screen === 'group') return String(g.id);
        return 'back';
      case 'browse':
        if (g.screen === 'group') return String(g.id);
        if (g.screen === 'browse') {
          const want = browseServerSearch(g);
          if (S.listSerial < (g.minSerial || 0)) return 'back';
          if (want) return { line: want, search: want, screen: 'browse' };
          if (!want && g.page) return 'page:' + g.page;
          return 'back';
        }
        return 'back';
      case 'create-enter':
        return g.screen === 'group' && g.id === srv.createdId ? 'yes' : 'no';
      case 'create-name':
        return 'back'; // cancels
      case 'password':
        return { lines: ['', ''], line: '(cancel)' }; // an empty new password changes nothing
      case 'conversation': case 'broadcast': case 'group':
      case 'mygroups-empty': case 'browse-empty':
        return 'back';
      default:
        return null;
    }
  }

  let pumpQueued = false;
  function schedulePump() {
    if (pumpQueued) return;
    pumpQueued = true;
    queueMicrotask(() => { pumpQueued = false; pump(); });
  }

  /**
   * Sends the next line when nothing is in flight: first the messages
   * typed in the chat the server is in, then a pending action, then a step
   * towards where the person is.
   */
  function pump() {
    const c = S.conn;
    if (!c || c.phase !== 'session' || c.draining || !S.session || S.loggingOut && !S.actions.length) return;
    if (S.asked.length || S.srv.block || S.srv.screen === 'loading' || S.srv.screen === 'none') return;
    // 1. messages queued for the chat the server is in, one at a time, in order
    const key = srvChatKey();
    if (key) {
      const m = S.own.find((o) => o.chat === key && o.state === 'queued');
      if (m) {
        if (request([m.text], { type: 'msg', m })) {
          setOwnState(m, 'inflight', 'Sending…');
        }
        return;
      }
    }
    // 2. an action (join, leave, members, create, password, logout) where it belongs
    const action = S.actions[0];
    const target = action ? action.where : goal();
    if (at(target)) {
      if (action) {
        S.actions.shift();
        S.navSteps = 0;
        S.lastNavAt = Date.now();
        action.run();
        schedulePump();
        return;
      }
      arrive();
      return;
    }
    // 3. one step towards the target
    const tkey = JSON.stringify(target);
    if (tkey !== S.navTarget) { S.navTarget = tkey; S.navSteps = 0; }
    if (S.navBlocked) return;
    if (++S.navSteps > 12) {
      // Going round in circles (a group that went away, a list that
      // changes under us): stop, and say so, until the person acts again.
      S.navSteps = 0;
      if (action) {
        S.actions.shift();
        notice('That could not be done; please try again.');
        schedulePump();
      } else {
        S.navBlocked = true;
        notice('That screen could not be opened; choose another one.');
      }
      return;
    }
    const step = nextStep(target);
    if (step === null) return;
    const s = typeof step === 'string' ? { line: step } : step;
    if (request(s.lines || [s.line], { type: 'nav', line: s.line, search: s.search, screen: s.screen })) S.lastNavAt = Date.now();
    S.arrived = false;
  }

  /** The key of the chat the server has open (and whose messages it takes). */
  function srvChatKey() {
    const srv = S.srv;
    if (srv.screen === 'conversation') return 'c:' + srv.contact;
    if (srv.screen === 'broadcast') return 'b:';
    if (srv.screen === 'group') return 'g:' + srv.groupId;
    return null;
  }

  /** The server is where the person is: the screen is ready. */
  function arrive() {
    S.navSteps = 0;
    if (S.restoring) {
      S.restoring = false;
      notice('Reconnected; you are back where you were.');
    }
    const screen = S.ui.screen;
    const chat = S.ui.chat;
    if (chat && (screen === 'conversation' || screen === 'broadcast' || screen === 'group')) clearUnreadOf(chat);
    if (screen === 'contacts') renderContacts();
    if (screen === 'browse') renderBrowse();
    $('chat-loading').hidden = true;
    if (!S.arrived || document.body.dataset.screen !== screen) {
      S.arrived = true;
      S.arrivedKey = uiKey();
      document.body.dataset.screen = screen;
      applyFocus();
    }
  }

  // ==================================================== 6. messages, notifications

  const chatKey = (chat) => chat.type === 'conversation' ? 'c:' + chat.contact : chat.type === 'broadcast' ? 'b:' : 'g:' + chat.id;

  /** The open chat's history arrives: it replaces what #messages shows. */
  function startHistory(chat) {
    const srv = S.srv;
    startBlock('history', 'loading', { chat, rows: [] });
    srv.contact = chat.type === 'conversation' ? chat.contact : null;
    if (chat.type === 'group') {
      srv.groupId = chat.id;
      srv.groupName = chat.name;
    }
  }

  function endHistory() {
    const srv = S.srv;
    const buf = endBlock('history');
    if (!buf) return;
    const chat = buf.chat;
    srv.screen = chat.type;
    const key = chatKey(chat);
    const u = S.ui.chat;
    // Render only what the person looks at (or is about to).
    if (!u || chatKey(u) !== key) return;
    if (chat.type === 'group') u.name = chat.name;
    renderHistory(chat, buf.rows);
  }

  /**
   * #messages gets the history, then the notifications of this chat that
   * came while it was being opened (unless the history has them already:
   * history rows carry no ids, so a recent row with the same sender and
   * text is taken as that notification), then the person's own messages
   * that are not known to be stored.
   */
  function renderHistory(chat, rows) {
    const key = chatKey(chat);
    const old = S.chatDom && S.chatDom.key === key ? S.chatDom : null;
    const buffered = old ? old.buffer.slice() : [];
    if (old && !old.loading) {
      // Shown since the line that reopened this chat went out: maybe in
      // the history too (it was being read meanwhile).
      for (const li of $('messages').children) if (li._n && li._at >= S.lastNavAt) buffered.push(li._n);
    }
    const dom = { key, chat, loading: false, buffer: [], rows: [], matchUntil: Date.now() + 3000 };
    S.chatDom = dom;
    const list = $('messages');
    list.replaceChildren();
    renderChatTitle();
    for (const r of rows) {
      const li = messageLi({ time: r.time, sender: r.sender, text: r.text, mine: r.sender === S.username });
      list.append(li);
      dom.rows.push({ sender: r.sender, text: r.text, time: r.time, li, matched: false });
    }
    // A replayed message was stored before the session resumed, so before
    // this history was read: any row of the history may be it.
    for (const b of buffered) appendIncoming(b.n, b.id, b.replayed ? 'any' : 'recent', b.replayed);
    // Own messages: stored ones are in the history now; an unconfirmed one
    // found there was stored after all.
    for (const m of S.own.filter((o) => o.chat === key)) {
      if (m.state === 'unconfirmed') {
        const r = matchRow(S.username, m.text, (m.at || 0) - MATCH_WINDOW_MS);
        if (r) {
          r.li.classList.add('recovered');
          r.li.querySelector('.status') || r.li.append(el('span', { class: 'status', text: 'stored (its confirmation was lost with the connection)' }));
          removeOwn(m);
          continue;
        }
      }
      m.li = ownLi(m);
      list.append(m.li);
    }
    scrollToEnd(true);
    $('chat-loading').hidden = true;
  }

  /**
   * The oldest history time a notification racing the history can have:
   * a few seconds before the newest history row, by the server's clock (so
   * a browser whose clock is off changes nothing). An older row with the
   * same text is another message, sent again, and is not taken for it.
   */
  function raceWindowStart() {
    const dom = S.chatDom;
    let newest = -Infinity;
    for (const r of (dom ? dom.rows : [])) if (r.time && r.time.getTime() > newest) newest = r.time.getTime();
    return newest - RACE_WINDOW_MS;
  }

  /** An unmatched history row with this sender and text, not older than `since`. */
  function matchRow(sender, text, since) {
    const dom = S.chatDom;
    if (!dom) return null;
    for (let i = dom.rows.length - 1; i >= 0; i--) {
      const r = dom.rows[i];
      if (r.matched || r.sender !== sender || r.text !== text) continue;
      if (r.time && r.time.getTime() < since) break;
      r.matched = true;
      return r;
    }
    return null;
  }

  /** Which chat a notification belongs to. */
  function notificationChat(n) {
    if (n.kind === 'private') return { type: 'conversation', contact: n.sender };
    if (n.kind === 'broadcast') return { type: 'broadcast' };
    return { type: 'group', name: n.group };
  }

  function sameChat(a, b) {
    if (!a || !b || a.type !== b.type) return false;
    if (a.type === 'conversation') return a.contact === b.contact;
    if (a.type === 'group') return a.name !== undefined && b.name !== undefined ? a.name === b.name : a.id === b.id;
    return true;
  }

  /** MESSAGE / BROADCAST / GROUP_MESSAGE, with the id of its MSG_ID if any. */
  function takeNotification(n, id) {
    if (id !== null) {
      const k = n.kind + ':' + id;
      if (S.seen.has(k)) return; // replayed and live both: shown already
      S.seen.add(k);
      if (id > S.last[n.kind]) { S.last[n.kind] = id; persistSoon(); }
    }
    const replaying = S.asked.length > 0 && S.asked[0].line === 'RESUME';
    if (replaying) S.replayed++;
    const chat = notificationChat(n);
    const dom = S.chatDom;
    const shownChat = dom && dom.chat ? dom.chat : null;
    if (shownChat && sameChat(shownChat, chat)) {
      if (dom.loading) dom.buffer.push({ n, id, replayed: replaying });
      else appendIncoming(n, id, Date.now() < dom.matchUntil ? 'recent' : null, replaying);
    }
    const looking = isChatScreen(S.ui.screen) && sameChat(S.ui.chat, chat);
    if (!looking) {
      badge(n);
      if (!replaying) announce(`New message from ${n.sender}${n.kind === 'group' ? ' in ' + n.group : n.kind === 'broadcast' ? ' on the broadcast channel' : ''}.`);
    } else if (!replaying) {
      announce(`${n.sender}: ${n.text.slice(0, 200)}`);
    }
  }

  const isChatScreen = (s) => s === 'conversation' || s === 'broadcast' || s === 'group';

  /**
   * Appends another person's message to #messages, once: with `match`
   * ('recent' rows only, or 'any' row) a history row with the same sender
   * and text is taken to be it and gets its id instead.
   */
  function appendIncoming(n, id, match, replayed) {
    if (match) {
      const r = matchRow(n.sender, n.text, match === 'any' ? -Infinity : raceWindowStart());
      if (r) {
        if (id !== null) { r.li.dataset.msgId = String(id); r.li.dataset.kind = n.kind; }
        return;
      }
    }
    const li = messageLi({ time: n.at, sender: n.sender, text: n.text, id, kind: n.kind, mine: n.sender === S.username });
    li._n = { n, id, replayed: !!replayed };
    li._at = Date.now();
    const list = $('messages');
    const stick = nearEnd();
    // Own messages still pending stay last.
    const firstPending = list.querySelector('li.message.pending');
    list.insertBefore(li, firstPending);
    if (stick) scrollToEnd(false);
  }

  function badge(n) {
    if (n.kind === 'private') {
      S.unread.set(n.sender, (S.unread.get(n.sender) || 0) + 1);
      updateContactBadge(n.sender);
    } else if (n.kind === 'broadcast') {
      S.broadcastUnread++;
      updateContactBadge(BROADCAST);
    } else {
      S.groupUnread.set(n.group, (S.groupUnread.get(n.group) || 0) + 1);
      updateGroupBadge(n.group);
    }
  }

  function clearUnreadOf(chat) {
    if (chat.type === 'conversation') { S.unread.delete(chat.contact); updateContactBadge(chat.contact); }
    else if (chat.type === 'broadcast') { S.broadcastUnread = 0; updateContactBadge(BROADCAST); }
    else if (chat.name !== undefined) { S.groupUnread.delete(chat.name); updateGroupBadge(chat.name); }
  }

  function onUnread(body) {
    const m = /^(\d+):(.*)$/.exec(body || '');
    if (!m) return;
    const parts = m[2].split('|').filter((p) => p !== '');
    for (let i = 0; i + 1 < parts.length; i += 2) S.unread.set(parts[i], Number(parts[i + 1]) || 0);
    const total = Number(m[1]);
    if (total > 0) {
      const from = [];
      for (let i = 0; i + 1 < parts.length; i += 2) from.push(`${parts[i]} (${parts[i + 1]})`);
      notice(`${plural(total, 'unread message', 'unread messages')} while you were away: ${visible(from.join(', '))}`);
    }
  }

  // -------------------------------------------------------------- own messages

  /** Keeps what chat the person types in; checks what the server could not take as a message. */
  function submitMessage(raw) {
    const chat = S.ui.chat;
    if (!chat || !S.session) return false;
    const text = raw.trim(); // the server trims every line
    if (!text) return false;
    if (byteLength(text) > 4096) {
      notice(`Not sent: the message is ${byteLength(text)} bytes; the limit is 4096. Send it in parts.`);
      return false;
    }
    // These lines are commands to the server, never messages: the protocol
    // has no way to send them as text.
    const groupCommand = chat.type === 'group' && (text === '/members' || text === '/leave' || isMembersPage(text));
    if (text === 'back' || groupCommand) {
      notice(`“${text}” cannot be sent as a message: the server reads it as a command.`);
      return false;
    }
    const m = { lid: ++S.ownSeq, chat: chatKey(chat), text, state: 'queued', at: Date.now(), note: '', li: null };
    S.own.push(m);
    if (S.chatDom && S.chatDom.key === m.chat) {
      m.li = ownLi(m);
      $('messages').append(m.li);
      scrollToEnd(true);
    }
    persistSoon();
    schedulePump();
    if (!S.conn || S.conn.phase !== 'session') notice('Not connected: the message is sent once the connection is back.');
    return true;
  }

  /** "/members <page>" (a page of 1 or more) is a command for a protocol-2 client. */
  function isMembersPage(text) {
    const m = /^\/members (.*)$/.exec(text);
    if (!m) return false;
    const p = m[1].trim();
    return /^\+?\d+$/.test(p) && Number(p) >= 1 && Number(p) <= Number.MAX_SAFE_INTEGER;
  }

  function acknowledged(tok, body) {
    const head = S.asked[0];
    if (!head || head.type !== 'msg') return;
    S.asked.shift();
    setOwnState(head.m, 'sent', body);
    removeOwn(head.m, true);
    maybeFinishDrain();
    schedulePump();
  }

  const STATE_CLASS = { queued: 'pending', inflight: 'pending', sent: 'sent', failed: 'failed', unconfirmed: 'unconfirmed' };

  function setOwnState(m, state, note) {
    m.state = state;
    m.note = note || '';
    if (m.li) fillOwnLi(m.li, m);
    persistSoon();
  }

  function removeOwn(m, keepLi) {
    S.own = S.own.filter((o) => o !== m);
    if (!keepLi && m.li) m.li.remove();
    persistSoon();
  }

  function ownLi(m) {
    const li = el('li', { class: 'message mine' });
    fillOwnLi(li, m);
    return li;
  }

  function fillOwnLi(li, m) {
    li.className = 'message mine ' + STATE_CLASS[m.state];
    li.replaceChildren(...messageParts(new Date(m.at), S.username, m.text));
    const status = m.state === 'queued' ? 'Waiting to be sent…' : m.state === 'inflight' ? 'Sending…' : m.note;
    li.append(el('span', { class: 'status', text: status }));
    if (m.state === 'failed' || m.state === 'unconfirmed') {
      li.append(el('span', { class: 'actions' },
        el('button', { type: 'button', class: 'resend', text: 'Send again', onclick: () => resend(m) }),
        el('button', { type: 'button', class: 'dismiss', text: 'Dismiss', onclick: () => removeOwn(m) })));
    }
    li.setAttribute('aria-busy', m.state === 'queued' || m.state === 'inflight' ? 'true' : 'false');
  }

  function resend(m) {
    const text = m.text;
    const chat = S.ui.chat;
    removeOwn(m);
    if (chat && chatKey(chat) === m.chat) submitMessage(text);
    $('message-input').focus();
  }

  function messageParts(time, sender, text) {
    return [
      el('span', { class: 'meta' }, timeEl(time), ' ', bdi(sender, 'sender')),
      el('p', { class: 'text', dir: 'auto', text: visible(text) }),
    ];
  }

  function messageLi({ time, sender, text, id, kind, mine }) {
    const li = el('li', { class: mine ? 'message mine' : 'message' }, ...messageParts(time, sender, text));
    if (id !== null && id !== undefined) { li.dataset.msgId = String(id); li.dataset.kind = kind; }
    return li;
  }

  function nearEnd() {
    const l = $('messages');
    return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
  }

  function scrollToEnd(force) {
    const l = $('messages');
    if (force || nearEnd()) l.scrollTop = l.scrollHeight;
  }

  // ==================================================== 7. screens and rendering

  function setConnected(yes) {
    document.body.dataset.connected = yes ? 'yes' : 'no';
  }

  function setStatus(text) {
    const s = $('status');
    if (s.textContent !== text) s.textContent = text;
  }

  let noticeTimer = 0;
  function notice(text) {
    const n = $('notice');
    n.textContent = visible(text);
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.textContent = ''; }, 15000);
  }

  let announceQueue = [];
  let announceTimer = 0;
  /** Polite announcements of new messages, a few at a time. */
  function announce(text) {
    announceQueue.push(visible(text));
    if (announceTimer) return;
    announceTimer = setTimeout(() => {
      announceTimer = 0;
      const items = announceQueue.splice(0);
      const a = $('announcer');
      const textOut = items.length > 3 ? `${items.length} new messages.` : items.join(' ');
      a.replaceChildren(el('p', { text: textOut }));
    }, 300);
  }

  function loginError(text) {
    $('login-error').textContent = text ? visible(text) : '';
  }

  function loginBusy(busy) {
    $('login-form').setAttribute('aria-busy', busy ? 'true' : 'false');
    if (busy) setStatus('checking…');
    else if (!S.session) setStatus(S.conn ? 'connected' : 'not connected');
  }

  function showLogin() {
    $('app-view').hidden = true;
    $('login-view').hidden = false;
    document.body.dataset.screen = 'login';
    $('login-password').value = '';
    if (S.username && !$('login-username').value) $('login-username').value = S.username;
    const focus = $('login-username').value ? $('login-password') : $('login-username');
    focus.focus();
  }

  function showApp() {
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    $('me').textContent = visible(S.username || '');
  }

  /** Shows one of the app's views; the navigator brings the server there. */
  function goTo(screen, opts) {
    S.navBlocked = false;
    const u = S.ui;
    const fresh = opts && opts.fresh;
    if (fresh || u.screen !== screen) u.minSerial = S.listSerial + 1;
    u.screen = screen;
    if (!isChatScreen(screen)) u.chat = null;
    S.focusOnArrival = opts && opts.focus ? opts.focus : null;
    showView(screen);
    // body[data-screen] names a screen once it is loaded; "loading" while
    // the server is being taken to another one.
    if (uiKey() !== S.arrivedKey) {
      S.arrived = false;
      if (document.body.dataset.screen !== 'connecting') document.body.dataset.screen = 'loading';
    }
    persistSoon();
    schedulePump();
  }

  const uiKey = () => S.ui.screen + '|' + (S.ui.chat ? chatKey(S.ui.chat) : '');

  function showView(screen) {
    const chat = isChatScreen(screen);
    $('contacts-view').hidden = screen !== 'contacts';
    $('groups-view').hidden = screen !== 'groups';
    $('browse-view').hidden = screen !== 'browse';
    $('chat-view').hidden = !chat;
    const tab = screen === 'contacts' || screen === 'conversation' || screen === 'broadcast' ? 'tab-contacts'
      : screen === 'browse' || (screen === 'group' && S.ui.chat && S.ui.chat.via === 'browse') ? 'tab-browse' : 'tab-groups';
    for (const id of ['tab-contacts', 'tab-groups', 'tab-browse']) {
      if (id === tab) $(id).setAttribute('aria-current', 'page');
      else $(id).removeAttribute('aria-current');
    }
    if (chat) {
      document.querySelector('#chat-view .group-only').hidden = screen !== 'group';
      if (screen !== 'group') { $('members-panel').hidden = true; S.membersOpen = false; }
    }
  }

  /** Opens a chat view (history comes from the server). */
  function openChat(chat) {
    const key = chatKey(chat);
    const same = S.chatDom && S.chatDom.key === key && !S.chatDom.loading;
    S.ui.chat = chat;
    if (!same) {
      // A new chat: empty until its history comes. Notifications for it
      // meanwhile wait in the buffer (they may be in the history too).
      S.chatDom = { key, chat, loading: true, buffer: [], rows: [], matchUntil: 0 };
      $('messages').replaceChildren();
      $('chat-loading').hidden = false;
      $('members-panel').hidden = true;
      $('member-list').replaceChildren();
      S.membersOpen = false;
      $('members-button').setAttribute('aria-expanded', 'false');
    }
    renderChatTitle();
    goTo(chat.type, { focus: 'message' });
    $('message-input').focus();
  }

  function renderChatTitle() {
    const chat = S.ui.chat;
    const t = $('chat-title');
    if (!chat) { t.replaceChildren(); return; }
    if (chat.type === 'conversation') t.replaceChildren('Chat with ', bdi(chat.contact, 'name'));
    else if (chat.type === 'broadcast') t.replaceChildren('Broadcast channel');
    else t.replaceChildren('Group ', bdi(chat.name || `#${chat.id}`, 'name'));
  }

  function applyFocus() {
    const f = S.focusOnArrival;
    S.focusOnArrival = null;
    if (!f) return;
    if (f === 'message') { $('message-input').focus(); return; }
    if (f === 'heading') {
      const h = { contacts: 'contacts-title', groups: 'groups-title', browse: 'browse-title' }[S.ui.screen];
      if (h) $(h).focus();
      return;
    }
    if (f.contact !== undefined) {
      const li = findLi('contact-list', 'contact', f.contact);
      (li ? li.querySelector('button.open') : $('contacts-title')).focus();
      return;
    }
    if (f.group !== undefined) {
      const li = findLi(f.list, 'groupId', String(f.group));
      (li ? li.querySelector('button.open') : $(f.list === 'browse-list' ? 'browse-title' : 'groups-title')).focus();
    }
  }

  function findLi(listId, key, value) {
    for (const li of $(listId).children) if (li.dataset[key] === value) return li;
    return null;
  }

  /** Re-renders a list, keeping the keyboard focus on the same entry. */
  function keepFocus(listId, key, render) {
    const active = document.activeElement;
    const li = active && active.closest ? active.closest(`#${listId} > li`) : null;
    const value = li ? li.dataset[key] : null;
    const cls = active && active.classList ? [...active.classList][0] : null;
    render();
    if (value !== null && value !== undefined) {
      const again = findLi(listId, key, value);
      const target = again && (again.querySelector(cls ? `button.${cls}` : 'button') || again.querySelector('button'));
      if (target) target.focus();
    }
  }

  // -------------------------------------------------------------------- contacts

  function renderContacts() {
    keepFocus('contact-list', 'contact', () => {
      const d = S.contacts;
      const want = S.ui.contactSearch || '';
      const srv = S.srv;
      let rows = d.rows;
      let heading = '';
      let more = d.more;
      const local = want && contactSearchLocal(want);
      if (want && (local || (srv.contactNoMatch === want && !d.matches))) {
        rows = [];
        more = 0;
        heading = `No one's name starts with “${visible(want)}”.`;
      } else if (want && d.matches !== want) {
        // The server's answer is on its way: narrow what is shown meanwhile.
        const k = nameKey(want);
        rows = d.rows.filter((r) => nameKey(r.name).startsWith(k));
        heading = 'Searching…';
        more = 0;
      } else if (d.matches) {
        heading = want ? `People whose name starts with “${visible(d.matches)}”:` : 'Loading the whole list…';
      }
      const items = want ? rows : [{ channel: true }, ...rows];
      reconcile($('contact-list'), 'contact', items, (r) => (r.channel ? BROADCAST : r.name), (r, li) => (r.channel ? broadcastLi(li) : contactLi(r, li)));
      if (!want && !rows.length) heading = d.loaded ? 'No one else has an account yet.' : 'Loading…';
      $('contact-heading').textContent = heading;
      const moreEl = $('contact-more');
      moreEl.hidden = !more;
      moreEl.textContent = more ? (d.matches ? `… and ${more} more whose name starts so: type more letters.` : `… and ${more} more: type the start of a name to find them.`) : '';
    });
  }

  /**
   * Brings `list`'s children to `items`, reusing the <li> of the same key
   * (and its buttons): a list that is refreshed while the person clicks in
   * it keeps the element under the pointer.
   */
  function reconcile(list, keyName, items, keyOf, build) {
    const old = new Map();
    for (const li of list.children) old.set(li.dataset[keyName], li);
    let i = 0;
    for (const item of items) {
      const key = keyOf(item);
      const reuse = old.get(key) || null;
      old.delete(key);
      const li = build(item, reuse);
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
      i++;
    }
    for (const li of old.values()) li.remove();
  }

  /** The <li> to fill (the old one of that key, or a new one) and its button.open. */
  function keyedLi(old, keyName, key, cls) {
    const li = old || el('li', { dataset: { [keyName]: key } });
    li.className = cls;
    let btn = li.querySelector('button.open');
    if (!btn) {
      btn = el('button', { type: 'button', class: 'open' });
      li.prepend(btn);
    }
    return [li, btn];
  }

  function broadcastLi(old) {
    const [li, btn] = keyedLi(old, 'contact', BROADCAST, 'contact channel');
    btn.onclick = () => openChat({ type: 'broadcast' });
    btn.replaceChildren(el('span', { class: 'presence channel-mark', 'aria-hidden': 'true' }), el('span', { class: 'name', text: 'Broadcast channel' }),
      el('span', { class: 'tag', text: 'everyone' }));
    addUnread(btn, S.broadcastUnread);
    return li;
  }

  function contactLi(r, old) {
    const [li, btn] = keyedLi(old, 'contact', r.name, 'contact' + (r.online ? ' online' : ''));
    btn.onclick = () => openChat({ type: 'conversation', contact: r.name });
    btn.replaceChildren(
      el('span', { class: r.online ? 'presence online' : 'presence offline', 'aria-hidden': 'true' }),
      bdi(r.name, 'name'),
      el('span', { class: 'visually-hidden', text: r.online ? ', online' : ', offline' }));
    addUnread(btn, S.unread.get(r.name) || 0);
    return li;
  }

  function addUnread(btn, n) {
    const old = btn.querySelector('.unread');
    if (old) old.remove();
    const oldSr = btn.querySelector('.unread-sr');
    if (oldSr) oldSr.remove();
    if (n > 0) {
      btn.append(el('span', { class: 'unread', 'aria-hidden': 'true', text: String(n) }),
        el('span', { class: 'visually-hidden unread-sr', text: `, ${plural(n, 'unread message', 'unread messages')}` }));
    }
  }

  function updateContactBadge(name) {
    const li = findLi('contact-list', 'contact', name);
    if (!li) return;
    addUnread(li.querySelector('button.open'), name === BROADCAST ? S.broadcastUnread : (S.unread.get(name) || 0));
  }

  // ---------------------------------------------------------------------- groups

  function groupInfo(g) {
    const desc = g.description && g.description !== 'No description' ? g.description : '';
    return el('span', { class: 'group-info' },
      desc ? el('span', { class: 'desc', dir: 'auto', text: visible(desc) }) : null,
      el('span', { class: 'count', text: plural(g.members, 'member', 'members') }),
      g.admin ? el('span', { class: 'role', text: 'admin' }) : null);
  }

  function renderMyGroups() {
    keepFocus('group-list', 'groupId', () => {
      const d = S.myGroups;
      reconcile($('group-list'), 'groupId', d.rows, (g) => String(g.id), (g, old) => {
        const [li, btn] = keyedLi(old, 'groupId', String(g.id), 'group');
        li.groupName = g.name;
        btn.onclick = () => openChat({ type: 'group', id: g.id, name: g.name, via: 'groups' });
        btn.replaceChildren(bdi(g.name, 'name'));
        li.replaceChildren(btn, groupInfo(g));
        addUnread(btn, S.groupUnread.get(g.name) || 0);
        return li;
      });
      const empty = $('groups-empty');
      empty.hidden = !d.empty;
      empty.textContent = d.empty ? `${d.empty} Browse groups to join one, or create one below.` : '';
    });
  }

  function updateGroupBadge(name) {
    for (const li of $('group-list').children) {
      if (li.groupName === name) addUnread(li.querySelector('button.open'), S.groupUnread.get(name) || 0);
    }
  }

  function renderBrowse() {
    keepFocus('browse-list', 'groupId', () => {
      const d = S.browse;
      const srv = S.srv;
      const want = (S.ui.browseSearch || '').trim();
      let rows = d.rows;
      let heading = '';
      let more = d.more;
      if (want && browseSearchLocal(want)) {
        const k = want.toLowerCase();
        rows = d.rows.filter((g) => g.name.toLowerCase().startsWith(k));
        heading = rows.length ? `Groups listed here whose name starts with “${visible(want)}”:` : `No group listed here has a name starting with “${visible(want)}”.`;
        more = 0;
      } else if (want && srv.browseNoMatch === want && !d.matches) {
        rows = [];
        more = 0;
        heading = `No group's name starts with “${visible(want)}”.`;
      } else if (want && d.matches !== want) {
        const k = want.toLowerCase();
        rows = d.rows.filter((g) => g.name.toLowerCase().startsWith(k));
        heading = 'Searching…';
        more = 0;
      } else if (d.matches) {
        heading = `Groups whose name starts with “${visible(d.matches)}”:`;
      } else if (d.empty) {
        heading = `${d.empty}`;
      }
      reconcile($('browse-list'), 'groupId', rows, (g) => String(g.id), (g, old) => {
        const [li, open] = keyedLi(old, 'groupId', String(g.id), 'group' + (g.member ? ' member' : ''));
        li.groupName = g.name;
        open.onclick = () => openChat({ type: 'group', id: g.id, name: g.name, via: 'browse' });
        open.replaceChildren(bdi(g.name, 'name'));
        let join = li.querySelector('button.join');
        if (!g.member && !join) join = el('button', { type: 'button', class: 'join', text: 'Join' });
        if (join) {
          join.setAttribute('aria-label', `Join ${visible(g.name)}`);
          join.onclick = () => joinGroup(g);
        }
        li.replaceChildren(open, groupInfo(g), g.member ? el('span', { class: 'membership', text: 'member' }) : join);
        return li;
      });
      $('browse-heading').textContent = heading;
      const page = d.matches || want ? 0 : (d.page || 1);
      const pages = d.pages || 0;
      const moreEl = $('browse-more');
      moreEl.hidden = !more && !(pages > 1);
      moreEl.textContent = d.matches && more ? `… and ${more} more whose name starts so: type more letters.`
        : more ? `Page ${page}${pages ? ' of ' + pages : ''}: ${plural(more, 'older group', 'older groups')} on the next pages.`
          : pages > 1 ? `Page ${page} of ${pages}.` : '';
      $('browse-newer').hidden = !(page > 1);
      $('browse-older').hidden = !(page >= 1 && more > 0 && !d.matches);
    });
  }

  function renderMembers() {
    const d = S.members;
    const list = $('member-list');
    list.replaceChildren();
    for (const m of d.rows) {
      const li = el('li', { class: 'member', dataset: { member: m.name } },
        bdi(m.name, 'name'), ' ',
        el('span', { class: 'role', text: m.admin ? 'admin' : 'member' }),
        m.joined ? el('span', { class: 'joined', text: ` since ${formatDay(m.joined)}` }) : null);
      list.append(li);
    }
    $('members-page').textContent = d.pages > 1 ? `Page ${d.page} of ${d.pages}` : plural(d.rows.length, 'member', 'members');
    const more = $('members-more');
    more.hidden = !d.more;
    more.textContent = d.more ? `… and ${plural(d.more, 'more member', 'more members')}.` : '';
    $('members-prev').hidden = !(d.page > 1);
    $('members-next').hidden = !(d.more > 0);
    $('members-panel').hidden = false;
    S.membersOpen = true;
    $('members-button').setAttribute('aria-expanded', 'true');
    if (S.focusMembers) { S.focusMembers = false; $('members-title').focus(); }
  }

  function formatDay(ymd) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(ymd);
    return m ? dateFmt.format(new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : ymd;
  }

  /** NOT_MEMBER / INVALID_SELECTION when opening a group: back to its list. */
  function refusedGroup(text) {
    notice(text);
    const head = S.asked[0];
    if (S.ui.screen === 'group' && head && head.line === String(S.ui.chat.id)) {
      const via = S.ui.chat.via;
      goTo(via === 'browse' ? 'browse' : 'groups', { fresh: true, focus: 'heading' });
    }
  }

  /** The person left the open group (or was no longer in it). */
  function leftGroup(text) {
    if (text) notice(text);
    if (S.ui.screen === 'group') {
      const via = S.ui.chat.via;
      goTo(via === 'browse' ? 'browse' : 'groups', { fresh: true, focus: 'heading' });
    }
  }

  // ============================================================ 8. user actions

  function act(where, run) {
    S.navBlocked = false;
    S.actions.push({ where, run });
    schedulePump();
  }

  function joinGroup(g) {
    act({ screen: 'browse', anyView: true }, () => request(['join:' + g.id], { type: 'nav', line: 'join:' + g.id }));
    S.focusOnArrival = { group: g.id, list: 'browse-list' };
  }

  function wire() {
    // -- login
    $('login-form').addEventListener('submit', (e) => { e.preventDefault(); submitAuth('login'); });
    $('signup-button').addEventListener('click', () => submitAuth('signup'));
    for (const id of ['login-username', 'login-password', 'invite-code']) {
      $(id).addEventListener('focus', ensureAuthConnection);
    }

    // -- account
    $('logout-button').addEventListener('click', logout);
    $('password-button').addEventListener('click', () => togglePasswordForm($('password-form').hidden));
    $('password-cancel').addEventListener('click', () => { togglePasswordForm(false); $('password-button').focus(); });
    $('password-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const old = $('old-password').value;
      const neu = $('new-password').value;
      if (!neu.trim()) { $('password-result').textContent = 'The new password cannot be empty.'; $('new-password').focus(); return; }
      if (/[\u0000\r\n]/.test(old + neu)) { $('password-result').textContent = 'A password cannot contain line breaks or NUL characters.'; return; }
      $('password-result').textContent = 'Changing your password…';
      // At the main menu: PASSWORD, then (after PASSWORD_PROMPT) the current and the new one.
      act({ screen: 'password' }, () => request([old, neu], { type: 'nav', line: '(password)' }));
    });

    // -- tabs
    $('tab-contacts').addEventListener('click', () => goTo('contacts', { fresh: true, focus: 'heading' }));
    $('tab-groups').addEventListener('click', () => goTo('groups', { fresh: true, focus: 'heading' }));
    $('tab-browse').addEventListener('click', () => goTo('browse', { fresh: true, focus: 'heading' }));
    $('contact-refresh').addEventListener('click', () => goTo('contacts', { fresh: true }));

    // -- searches (as the person types, and at Enter)
    let contactTimer = 0;
    const contactSearch = () => {
      clearTimeout(contactTimer);
      S.ui.contactSearch = $('contact-search').value.replace(/^\s+/, '');
      renderContacts();
      persistSoon();
      schedulePump();
    };
    $('contact-search').addEventListener('input', () => { clearTimeout(contactTimer); contactTimer = setTimeout(contactSearch, 250); });
    $('contact-search-form').addEventListener('submit', (e) => { e.preventDefault(); contactSearch(); });
    let browseTimer = 0;
    const browseSearch = () => {
      clearTimeout(browseTimer);
      S.ui.browseSearch = $('browse-search').value.trim();
      S.ui.browsePage = 0;
      renderBrowse();
      persistSoon();
      schedulePump();
    };
    $('browse-search').addEventListener('input', () => { clearTimeout(browseTimer); browseTimer = setTimeout(browseSearch, 250); });
    $('browse-search-form').addEventListener('submit', (e) => { e.preventDefault(); browseSearch(); });
    $('browse-older').addEventListener('click', () => { S.ui.browsePage = (S.browse.page || 1) + 1; S.focusOnArrival = 'heading'; schedulePump(); });
    $('browse-newer').addEventListener('click', () => { S.ui.browsePage = Math.max(1, (S.browse.page || 2) - 1); S.focusOnArrival = 'heading'; schedulePump(); });

    // -- create a group
    $('create-group-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const name = $('group-name').value.trim();
      const description = $('group-description').value.trim();
      const result = $('create-result');
      // An empty name or "back" (and "back" as description) cancel at the server: say so here.
      if (!name) { result.textContent = 'Give the group a name.'; $('group-name').focus(); return; }
      if (name === 'back' || description === 'back') { result.textContent = '“back” cannot be a group name or description.'; return; }
      if (/[\u0000-\u001F\u007F-\u009F]/.test(name + description)) { result.textContent = 'The name and the description cannot contain control characters.'; return; }
      result.textContent = 'Creating…';
      act({ screen: 'create-name' }, () => {
        S.creating = name;
        request([name, description], { type: 'nav', line: '(create)' });
      });
    });

    // -- chat
    $('send-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const input = $('message-input');
      if (submitMessage(input.value)) input.value = '';
    });
    $('back-button').addEventListener('click', () => {
      const chat = S.ui.chat;
      if (!chat) return;
      if (chat.type === 'conversation') goTo('contacts', { focus: { contact: chat.contact } });
      else if (chat.type === 'broadcast') goTo('contacts', { focus: { contact: BROADCAST } });
      else goTo(chat.via === 'browse' ? 'browse' : 'groups', { fresh: true, focus: { group: chat.id, list: chat.via === 'browse' ? 'browse-list' : 'group-list' } });
    });
    const members = (page) => {
      const chat = S.ui.chat;
      if (!chat || chat.type !== 'group') return;
      S.focusMembers = true;
      act({ screen: 'group', id: chat.id }, () => request(['/members ' + page], { type: 'nav', line: '/members' }));
    };
    $('members-button').addEventListener('click', () => {
      if (S.membersOpen) { $('members-panel').hidden = true; S.membersOpen = false; $('members-button').setAttribute('aria-expanded', 'false'); return; }
      members(1);
    });
    $('members-next').addEventListener('click', () => members((S.members.page || 1) + 1));
    $('members-prev').addEventListener('click', () => members(Math.max(1, (S.members.page || 2) - 1)));
    $('members-close').addEventListener('click', () => {
      $('members-panel').hidden = true;
      S.membersOpen = false;
      $('members-button').setAttribute('aria-expanded', 'false');
      $('members-button').focus();
    });
    $('leave-button').addEventListener('click', () => {
      const chat = S.ui.chat;
      if (!chat || chat.type !== 'group') return;
      act({ screen: 'group', id: chat.id }, () => request(['/leave'], { type: 'nav', line: '/leave' }));
    });

    // -- connection
    window.addEventListener('online', reconnectNow);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) reconnectNow(); });
    window.addEventListener('pagehide', persistNow);
  }

  function togglePasswordForm(open) {
    $('password-form').hidden = !open;
    $('password-button').setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) { $('password-result').textContent = ''; $('old-password').focus(); }
  }

  /** A connection at authentication, ready for the login form (opened when the form is used). */
  function ensureAuthConnection() {
    if (S.session) return;
    const c = S.conn;
    if (c && (c.phase !== 'auth-idle' || Date.now() - c.openedAt < FRESH_AUTH_MS)) return;
    openConnection();
  }

  function submitAuth(mode) {
    const username = $('login-username').value.trim();
    const password = $('login-password').value;
    const invite = $('invite-code').value.trim();
    if (S.authRequest) return; // one attempt at a time
    loginError('');
    if (!username) { loginError('Enter your username.'); $('login-username').focus(); return; }
    if (!password) { loginError('Enter your password.'); $('login-password').focus(); return; }
    if (mode === 'signup' && S.registration === 'closed') { loginError(TEXT.signupClosed); return; }
    if (mode === 'signup' && S.registration === 'invite' && !invite) {
      $('invite-field').hidden = false;
      loginError(TEXT.inviteRequired);
      $('invite-code').focus();
      return;
    }
    S.authRequest = { mode, username, password, invite };
    loginBusy(true);
    const c = S.conn;
    const fresh = c && Date.now() - c.openedAt < FRESH_AUTH_MS;
    if (fresh && c.phase === 'auth-idle') startAuth();
    else if (fresh && ['opening', 'auth-wait', 'hello', 'hello-ok'].includes(c.phase)) { /* startAuth once the server says REGISTRATION */ }
    else openConnection();
  }

  function logout() {
    S.loggingOut = true;
    const c = S.conn;
    if (!c || c.phase !== 'session' || c.draining) { finishLogout(); return; }
    setStatus('logging out…');
    // "bye" at the main menu ends the session (and revokes its token); the server closes.
    S.actions = [];
    act({ screen: 'menu' }, () => { rawSend('bye'); setTimeout(() => { if (S.loggingOut) { dropConnection(); finishLogout(); } }, 3000); });
  }

  function finishLogout() {
    dropConnection();
    clearTimeout(S.reconnectTimer);
    S.reconnectTimer = 0;
    S.loggingOut = false;
    S.session = false;
    S.token = null;
    S.restoring = false;
    S.asked = [];
    S.actions = [];
    storage.clear();
    resetForNewSession('');
    S.username = null;
    showLogin();
    loginError('');
    setConnected(false);
    setStatus('logged out');
  }

  // ================================================================== 9. start

  function start() {
    wire();
    const saved = storage.load();
    if (saved && saved.token && saved.username) {
      // A reload: resume the stored session and go back where the person was.
      S.username = saved.username;
      S.token = saved.token;
      S.last = Object.assign({ private: 0, broadcast: 0, group: 0 }, saved.last || {});
      S.session = true;
      S.restoring = true;
      const u = saved.ui || {};
      S.ui = {
        screen: ['contacts', 'conversation', 'broadcast', 'groups', 'browse', 'group'].includes(u.screen) ? u.screen : 'contacts',
        chat: u.chat || null, contactSearch: u.contactSearch || '', browseSearch: u.browseSearch || '', browsePage: u.browsePage || 0, minSerial: 0,
      };
      if (isChatScreen(S.ui.screen) && !S.ui.chat) S.ui.screen = 'contacts';
      for (const o of saved.own || []) {
        const state = o.state === 'inflight' ? 'unconfirmed' : o.state;
        const note = o.state === 'inflight' ? 'Not confirmed: the page was reloaded before the server answered. Check before sending it again.' : o.note;
        S.own.push({ lid: ++S.ownSeq, chat: o.chat, text: o.text, state, at: o.at, note, li: null });
      }
      $('contact-search').value = S.ui.contactSearch;
      $('browse-search').value = S.ui.browseSearch;
      showApp();
      document.body.dataset.screen = 'connecting';
      if (S.ui.chat) {
        const chat = S.ui.chat;
        S.chatDom = { key: chatKey(chat), chat, loading: true, buffer: [], rows: [], matchUntil: 0 };
        renderChatTitle();
        $('chat-loading').hidden = false;
      }
      showView(S.ui.screen);
      setStatus('reconnecting…');
      S.resumeWanted = true;
      openConnection();
    } else {
      showLogin();
      setStatus('connecting…');
      openConnection(); // learns REGISTRATION (invite field); the form reuses it while it is fresh
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
