// aTES web UI: plain ES2022 over the REST API, no framework and no build step.
//
// Layout of this file:
//   1. DOM and formatting helpers        5. Router and background polling
//   2. Error banner and action runner    6. Views: tasks, accounting, analytics, accounts, mail
//   3. API client with token refresh     7. SVG chart
//   4. Session: sign in/out, header      8. Start-up
//   (6 also has operations: where work waits, parked messages and their re-drive)
'use strict';

// ===== 1. DOM and formatting helpers =====

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** Build an element: el('td', { class: 'money' }, 'text', childNode). Listeners via onclick etc. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  node.append(...children.flat().filter((c) => c != null && c !== false));
  return node;
}

/** Integer cents to "$12.34" / "-$12.34" (no float arithmetic, so no rounding surprises). */
function formatMoney(cents) {
  const n = Math.trunc(Number(cents) || 0);
  const abs = Math.abs(n);
  const text = `$${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
  return n < 0 ? `-${text}` : text;
}

/** A right-aligned money cell, muted red when negative. */
function moneyCell(cents) {
  return el('td', { class: cents < 0 ? 'money negative' : 'money' }, formatMoney(cents));
}

/** Put an amount into an existing element, keeping the negative styling in sync. */
function setMoney(node, cents) {
  node.textContent = formatMoney(cents);
  node.classList.toggle('negative', cents < 0);
}

const pad2 = (n) => String(n).padStart(2, '0');

/** YYYY-MM-DD in the browser's time zone (toISOString would give the UTC day). */
function localDate(date = new Date()) {
  return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())}`;
}

function daysAgo(days) {
  const date = new Date();
  date.setDate(date.getDate() - days);
  return localDate(date);
}

function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** "?a=1&b=2" without the empty parameters, so the server applies its own defaults. */
function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value != null && value !== '') search.set(key, value);
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** A single full-width row for empty tables, so an empty table does not look broken. */
function emptyRow(columns, text) {
  return el('tr', { class: 'empty' }, el('td', { colspan: columns }, text));
}

// Polled views re-render only when the data really changed, so focus, scroll position and
// hover tooltips survive the 5-second refresh.
const lastRendered = new Map();
function changed(key, data) {
  const json = JSON.stringify(data);
  if (lastRendered.get(key) === json) return false;
  lastRendered.set(key, json);
  return true;
}

// ===== 2. Error banner and action runner =====

const NETWORK_MESSAGE = 'Could not reach the server. Check your connection and try again.';

/** An API failure, carrying the problem+json fields. status 0 means the network failed. */
class ApiError extends Error {
  constructor(status, problem = {}) {
    super(problem.detail || problem.title || `The request failed with status ${status}.`);
    this.status = status;
    this.title = problem.title;
    this.detail = this.message;
  }
}

/** Thrown when the session cannot be renewed: the user has to sign in again. */
class SessionLost extends ApiError {
  constructor(detail) {
    super(401, { detail });
    this.sessionLost = true;
  }
}

// The banner remembers who raised it: a successful background poll may only clear a
// poll error, never hide a problem the user's own action caused.
const banner = {
  source: null,
  show(message, source = 'action') {
    $('#error-text').textContent = message;
    $('#error').hidden = false;
    this.source = source;
  },
  clear(source) {
    if (source && this.source !== source) return;
    $('#error').hidden = true;
    $('#error-text').textContent = '';
    this.source = null;
  },
};

const messageOf = (err) => (err instanceof ApiError ? err.detail : err?.message || NETWORK_MESSAGE);

/**
 * Run a user action: disable its button meanwhile, clear the banner when it works,
 * show the problem detail when it does not. Returns the action's result or undefined.
 */
async function run(button, action) {
  if (button) button.disabled = true;
  try {
    const result = await action();
    banner.clear();
    return result;
  } catch (err) {
    if (!(err instanceof ApiError)) console.error(err);
    banner.show(messageOf(err));
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// ===== 3. API client with token refresh =====

// Tokens live in sessionStorage: they survive a reload but not closing the tab.
const tokens = {
  KEY: 'ates.tokens',
  get() {
    try {
      return JSON.parse(sessionStorage.getItem(this.KEY));
    } catch {
      return null;
    }
  },
  save(pair) {
    const stored = { access: pair.access_token, refresh: pair.refresh_token, expiresAt: Date.now() + pair.expires_in * 1000 };
    sessionStorage.setItem(this.KEY, JSON.stringify(stored));
    return stored;
  },
  clear() {
    sessionStorage.removeItem(this.KEY);
  },
};

/** One fetch; network failures become ApiError(0) so callers handle a single error type. */
async function send(method, path, { body, headers = {}, token } = {}) {
  const allHeaders = { Accept: 'application/json, application/problem+json', ...headers };
  if (body !== undefined) allHeaders['Content-Type'] = 'application/json';
  if (token) allHeaders.Authorization = `Bearer ${token}`;
  try {
    return await fetch(path, { method, headers: allHeaders, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { title: 'Network error', detail: NETWORK_MESSAGE });
  }
}

/** The problem document of a failed response, tolerating non-JSON bodies from proxies. */
async function readProblem(res) {
  try {
    return await res.json();
  } catch {
    return { title: res.statusText, detail: `The server answered ${res.status} ${res.statusText}.`.replace(' .', '.') };
  }
}

async function parse(res) {
  if (!res.ok) throw new ApiError(res.status, await readProblem(res));
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

// Refresh tokens are single-use, so two parallel refreshes would make one of them fail and
// sign the user out: every caller shares the one in-flight promise.
let refreshing = null;
function refreshTokens() {
  refreshing ??= (async () => {
    const current = tokens.get();
    if (!current?.refresh) throw new SessionLost('Please sign in.');
    const res = await send('POST', '/api/auth/refresh', { body: { refresh_token: current.refresh } });
    if (!res.ok) {
      const problem = await readProblem(res);
      throw new SessionLost(problem.detail || 'Your session has ended. Please sign in again.');
    }
    return tokens.save(await res.json());
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** Refresh, and if the server refuses, end the session and show the sign-in form. */
async function refreshOrSignOut() {
  try {
    return await refreshTokens();
  } catch (err) {
    if (err.sessionLost) session.expire(err.detail);
    throw err;
  }
}

/** Current tokens, refreshed first when the access token expires within 30 seconds. */
async function freshTokens() {
  const current = tokens.get();
  if (!current) throw new SessionLost('Please sign in.');
  return current.expiresAt - Date.now() < 30_000 ? refreshOrSignOut() : current;
}

/**
 * Authenticated JSON request. On 401 it refreshes once and retries once. A 401 saying
 * "token outdated" means our role changed: the retry uses a token with the new role, and
 * the header is rebuilt from /api/auth/me afterwards.
 */
async function api(method, path, options = {}) {
  const used = await freshTokens();
  let res = await send(method, path, { ...options, token: used.access });
  if (res.status === 401) {
    const problem = await readProblem(res);
    const outdated = /token outdated/i.test(problem.detail || '');
    // A parallel request may have refreshed already while this one was in flight.
    const latest = tokens.get();
    const next = latest && latest.access !== used.access ? latest : await refreshOrSignOut();
    res = await send(method, path, { ...options, token: next.access });
    if (outdated) session.roleChanged();
  }
  return parse(res);
}

// ===== 4. Session: sign in/out, header =====

const state = {
  me: null, // the /api/auth/me account
  canMail: false, // whether /api/dev/mail answered 200 for this user
  names: new Map(), // account_id -> display name, when this user may list accounts
  view: null, // the visible view's name
};

const hasRole = (...roles) => roles.includes(state.me?.role);

const session = {
  /** Sign in with the form's credentials, then load the user and show the app. */
  async login(email, password) {
    const res = await send('POST', '/api/auth/login', { body: { email, password } });
    if (!res.ok) {
      const problem = await readProblem(res);
      const wait = res.status === 429 ? res.headers.get('Retry-After') : null;
      const suffix = wait ? ` Try again in ${wait} seconds.` : '';
      throw new ApiError(res.status, { ...problem, detail: (problem.detail || problem.title || 'Sign-in failed.') + suffix });
    }
    tokens.save(await res.json());
    await this.loadMe();
    showApp();
  },

  /** Read who we are and which tabs this user may see. */
  async loadMe() {
    state.me = await api('GET', '/api/auth/me');
    state.canMail = await this.probeMail();
    renderHeader();
  },

  /** The Mail tab exists only in dev deployments and only for users allowed to read it. */
  async probeMail() {
    try {
      await api('GET', '/api/dev/mail');
      return true;
    } catch {
      return false;
    }
  },

  /** Explicit sign-out: revoke the refresh token server-side (best effort), then forget it. */
  async logout() {
    const current = await freshTokens().catch(() => null);
    if (current) {
      await send('POST', '/api/auth/logout', { body: { refresh_token: current.refresh }, token: current.access }).catch(() => {});
    }
    this.expire(null);
    banner.clear();
  },

  /** Forget everything about the user and show the sign-in form, with a reason if any. */
  expire(detail) {
    tokens.clear();
    state.me = null;
    state.names.clear();
    lastRendered.clear();
    // Leave nothing of this user's data behind for whoever signs in next in this tab.
    for (const body of $$('#app tbody, #mail-list')) body.replaceChildren();
    for (const notice of $$('#app .notice')) notice.textContent = '';
    accountingView.selected = null;
    $('#account-statement').hidden = true;
    showSignIn(detail);
  },

  // Several requests may notice the role change at once; re-read /me only once.
  reloading: null,
  roleChanged() {
    this.reloading ??= this.loadMe()
      .then(() => route())
      .catch((err) => banner.show(messageOf(err)))
      .finally(() => {
        this.reloading = null;
      });
  },
};

/** Which views this user may open; mirrors the server's rules so we hide what would 403. */
function allowed(view) {
  switch (view) {
    case 'tasks':
    case 'accounting':
    case 'password':
      return true;
    case 'analytics':
    case 'accounts':
    case 'operations':
      return hasRole('admin');
    case 'mail':
      return state.canMail;
    default:
      return false;
  }
}

/** Name, nav links and role-specific controls ([data-roles="admin manager"]). */
function renderHeader() {
  const { me } = state;
  $('#whoami').textContent = `${me.full_name} (${me.role})`;
  for (const node of $$('[data-roles]')) node.hidden = !node.dataset.roles.split(' ').includes(me.role);
  for (const link of $$('nav [data-view]')) link.hidden = !allowed(link.dataset.view);
}

function showSignIn(detail) {
  stopPolling();
  state.view = null;
  $('#app').hidden = true;
  $('#signin').hidden = false;
  if (detail) banner.show(detail);
  $('#login-password').value = '';
  $('#login-email').focus();
}

function showApp() {
  $('#signin').hidden = true;
  $('#app').hidden = false;
  route();
}

function initSession() {
  $('#login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    run($('#login-submit'), () => session.login($('#login-email').value.trim(), $('#login-password').value));
  });
  $('#logout').addEventListener('click', () => session.logout());
  $('#error-dismiss').addEventListener('click', () => banner.clear());
}

// ===== 5. Router and background polling =====

/** Show the view named in the hash (#/tasks), falling back to tasks when not allowed. */
function route() {
  if (!state.me) return;
  let name = location.hash.replace(/^#\/?/, '') || 'tasks';
  if (!views[name] || !allowed(name)) {
    name = 'tasks';
    if (location.hash !== '#/tasks') history.replaceState(null, '', '#/tasks');
  }
  for (const section of $$('[data-section]')) section.hidden = section.dataset.section !== name;
  for (const link of $$('nav [data-view]')) {
    if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  state.view = name;
  startPolling(name);
  views[name].show();
}

// Accounting and analytics change in the background (events from other services), so
// they re-fetch every 5 s while visible. One poll at a time; skipped in a hidden tab.
let pollTimer = null;
let pollBusy = false;

function startPolling(name) {
  stopPolling();
  const view = views[name];
  if (!view.poll) return;
  pollTimer = setInterval(async () => {
    if (document.hidden || pollBusy || state.view !== name) return;
    pollBusy = true;
    try {
      await view.poll();
      banner.clear('poll');
    } catch (err) {
      // Do not hide an error from the user's own action behind a background one.
      if (banner.source !== 'action') banner.show(messageOf(err), 'poll');
    } finally {
      pollBusy = false;
    }
  }, 5000);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

// ===== 6a. Tasks view =====

/** Load display names for assignees, if this user may list accounts; silent otherwise. */
async function loadNames() {
  let items = [];
  try {
    if (hasRole('admin')) items = (await api('GET', '/api/accounts')).items;
    else if (hasRole('accountant')) items = (await api('GET', '/api/accounting/accounts')).items;
  } catch {
    return; // names are a nicety; the short id is shown instead
  }
  for (const account of items) {
    const name = account.full_name || account.email;
    if (name) state.names.set(account.account_id, name);
  }
}

function assigneeLabel(accountId) {
  if (accountId === state.me.account_id) return 'you';
  return state.names.get(accountId) || String(accountId).slice(0, 8);
}

const tasksView = {
  cursor: null,
  seq: 0, // discards answers to outdated requests when filters change quickly

  init() {
    $('#task-form').addEventListener('submit', (event) => {
      event.preventDefault();
      run($('#task-create'), () => this.create());
    });
    $('#tasks-scope').addEventListener('change', () => this.show());
    $('#tasks-status').addEventListener('change', () => this.show());
    $('#tasks-more').addEventListener('click', () => run($('#tasks-more'), () => this.load(true)));
    $('#tasks-shuffle').addEventListener('click', () => run($('#tasks-shuffle'), () => this.shuffle()));
    $('#tasks-table').addEventListener('click', (event) => {
      const button = event.target.closest('button.task-complete');
      if (button) run(button, () => this.complete(button.dataset.taskId));
    });
  },

  show() {
    return run(null, () => this.load(false));
  },

  /** Fetch the first page (or the next one when appending) for the chosen filters. */
  async load(append) {
    const seq = ++this.seq;
    const scope = $('#tasks-scope').value;
    const params = { status: $('#tasks-status').value, limit: 50, cursor: append ? this.cursor : null };
    const path = (scope === 'all' ? '/api/tasks' : '/api/tasks/mine') + query(params);
    const [page] = await Promise.all([api('GET', path), append ? null : loadNames()]);
    if (seq !== this.seq) return;
    this.cursor = page.next_cursor;
    this.render(page.items, append);
  },

  render(tasks, append) {
    const body = $('#tasks-table tbody');
    if (!append) body.replaceChildren();
    body.querySelector('tr.empty')?.remove();
    body.append(...tasks.map((task) => this.row(task)));
    if (!body.children.length) body.append(emptyRow(5, 'No tasks match these filters.'));
    $('#tasks-more').hidden = !this.cursor;
  },

  row(task) {
    const title = task.jira_id ? `[${task.jira_id}] ${task.title}` : task.title;
    const mine = task.assignee_id === state.me.account_id;
    const action = task.status === 'open' && mine
      ? el('button', { type: 'button', class: 'task-complete small-button', dataset: { taskId: task.task_id } }, 'Complete')
      : null;
    return el('tr', { dataset: { taskId: task.task_id } },
      el('td', { class: 'task-title', title: task.description || null }, title),
      el('td', { class: `task-status status-${task.status}` }, task.status),
      el('td', { class: 'task-assignee', title: task.assignee_id }, assigneeLabel(task.assignee_id)),
      el('td', { class: 'nowrap' }, formatTime(task.created_at)),
      el('td', { class: 'actions-cell' }, action));
  },

  async create() {
    const body = { title: $('#task-title').value.trim() };
    const jira = $('#task-jira').value.trim();
    const description = $('#task-description').value.trim();
    if (jira) body.jira_id = jira;
    if (description) body.description = description;
    // A fresh key per submit: the server deduplicates retries of this one request only.
    const task = await api('POST', '/api/tasks', { body, headers: { 'Idempotency-Key': crypto.randomUUID() } });
    $('#task-form').reset();
    $('#tasks-notice').textContent = `Created "${task.title}", assigned to ${assigneeLabel(task.assignee_id)}.`;
    await this.load(false);
  },

  async complete(taskId) {
    const task = await api('POST', `/api/tasks/${encodeURIComponent(taskId)}/complete`);
    $('#tasks-notice').textContent = `Completed "${task.title}".`;
    await this.load(false);
  },

  async shuffle() {
    const result = await api('POST', '/api/tasks/shuffle');
    $('#tasks-notice').textContent = `Reassigned ${result.reassigned} tasks`;
    await this.load(false);
  },
};

// ===== 6b. Accounting view =====

const KIND_LABELS = { assign_fee: 'Assignment fee', completion_reward: 'Completion reward', payout: 'Payout' };

/** Audit-log rows: time, description, amount, balance after. */
function renderTransactions(body, transactions) {
  body.replaceChildren(...transactions.map((tx) => {
    const task = tx.task_title ? (tx.jira_id ? `[${tx.jira_id}] ${tx.task_title}` : tx.task_title) : '';
    const description = tx.description || [KIND_LABELS[tx.kind] || tx.kind, task].filter(Boolean).join(': ');
    return el('tr', { dataset: { transactionId: tx.transaction_id } },
      el('td', { class: 'nowrap' }, formatTime(tx.created_at)),
      el('td', {}, description),
      moneyCell(tx.amount),
      moneyCell(tx.balance_after));
  }));
  if (!transactions.length) body.append(emptyRow(4, 'No transactions on this day.'));
}

const accountingView = {
  selected: null, // account_id whose statement is shown under the accounts table

  init() {
    $('#my-date').value = localDate();
    $('#close-date').value = localDate();
    $('#earnings-from').value = daysAgo(29);
    $('#earnings-to').value = localDate();
    $('#accounting-refresh').addEventListener('click', () => run($('#accounting-refresh'), () => this.load()));
    $('#my-date').addEventListener('change', () => run(null, () => Promise.all([this.loadMine(), this.loadStatement()])));
    $('#earnings-from').addEventListener('change', () => run(null, () => this.loadChart()));
    $('#earnings-to').addEventListener('change', () => run(null, () => this.loadChart()));
    $('#close-form').addEventListener('submit', (event) => {
      event.preventDefault();
      run($('#close-submit'), () => this.closeDay());
    });
    const table = $('#accounting-accounts');
    table.addEventListener('click', (event) => this.select(event.target.closest('tr[data-account-id]')));
    table.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this.select(event.target.closest('tr[data-account-id]'));
      }
    });
  },

  isStaff: () => hasRole('admin', 'accountant'),

  show() {
    return run(null, () => this.load());
  },

  poll() {
    return this.load();
  },

  load() {
    const jobs = [this.loadMine()];
    if (this.isStaff()) jobs.push(this.loadAccounts(), this.loadChart(), this.loadPayouts(), this.loadStatement());
    return Promise.all(jobs);
  },

  async loadMine() {
    const statement = await api('GET', `/api/accounting/me${query({ date: $('#my-date').value })}`);
    setMoney($('#my-balance'), statement.balance);
    if (changed('my-transactions', statement.transactions)) {
      renderTransactions($('#my-transactions tbody'), statement.transactions);
    }
  },

  async loadAccounts() {
    const { items } = await api('GET', '/api/accounting/accounts');
    for (const a of items) if (a.full_name || a.email) state.names.set(a.account_id, a.full_name || a.email);
    if (!changed('accounting-accounts', items)) return;
    const body = $('#accounting-accounts tbody');
    body.replaceChildren(...items.map((a) => el('tr', { dataset: { accountId: a.account_id }, tabindex: 0, class: a.active ? null : 'inactive' },
      el('td', {}, a.full_name || a.email || a.account_id.slice(0, 8),
        a.full_name && a.email ? el('div', { class: 'muted small' }, a.email) : null),
      el('td', {}, a.role || '–', a.active ? null : el('span', { class: 'muted small' }, ' (inactive)')),
      moneyCell(a.balance))));
    if (!items.length) body.append(emptyRow(3, 'No accounts yet.'));
    this.markSelected();
  },

  markSelected() {
    for (const row of $$('#accounting-accounts tbody tr[data-account-id]')) {
      const isSelected = row.dataset.accountId === this.selected;
      row.classList.toggle('selected', isSelected);
      row.setAttribute('aria-selected', String(isSelected));
    }
  },

  select(row) {
    if (!row) return;
    this.selected = row.dataset.accountId;
    this.markSelected();
    lastRendered.delete('statement'); // a different account: always redraw
    run(null, () => this.loadStatement());
  },

  /** The selected account's statement for the day chosen in #my-date. */
  async loadStatement() {
    if (!this.selected || !this.isStaff()) return;
    const id = this.selected;
    const date = $('#my-date').value;
    const statement = await api('GET', `/api/accounting/accounts/${encodeURIComponent(id)}${query({ date })}`);
    if (id !== this.selected) return; // the user picked another row meanwhile
    $('#account-statement').hidden = false;
    $('#account-statement-title').textContent = `Statement of ${state.names.get(id) || id.slice(0, 8)} for ${statement.date || date}`;
    setMoney($('#account-statement-balance'), statement.balance);
    if (changed('statement', [id, statement.transactions])) {
      renderTransactions($('#account-statement-transactions tbody'), statement.transactions);
    }
  },

  async loadChart() {
    const range = { from: $('#earnings-from').value, to: $('#earnings-to').value };
    const days = await api('GET', `/api/accounting/dashboard${query(range)}`);
    if (!changed('earnings-chart', days)) return;
    drawChart($('#earnings-chart'), days.map((d) => ({
      label: d.date,
      value: d.management_earnings,
      title: `${d.date}: management earnings ${formatMoney(d.management_earnings)}\n`
        + `assign fees ${formatMoney(d.assign_fees)}, completion rewards ${formatMoney(d.completion_rewards)}, payouts ${formatMoney(d.payouts)}`,
    })), { label: 'Management earnings per day' });
  },

  async loadPayouts() {
    const emails = await api('GET', '/api/accounting/payout-emails');
    if (!changed('payout-emails', emails)) return;
    const body = $('#payout-emails tbody');
    body.replaceChildren(...emails.map((m) => el('tr', { dataset: { transactionId: m.transaction_id } },
      el('td', { class: 'nowrap' }, m.billing_date),
      el('td', {}, m.email || state.names.get(m.account_id) || m.account_id.slice(0, 8)),
      moneyCell(m.amount),
      el('td', {}, String(m.attempts)),
      el('td', { class: m.sent_at ? 'ok' : m.last_error ? 'negative' : 'muted' },
        m.sent_at ? `Sent ${formatTime(m.sent_at)}` : m.last_error ? `Failed: ${m.last_error}` : 'Pending'))));
    if (!emails.length) body.append(emptyRow(5, 'No payout emails yet.'));
  },

  async closeDay() {
    const date = $('#close-date').value;
    $('#close-result').textContent = ''; // never leave an older day's result next to a new error
    if (!date) throw new ApiError(400, { detail: 'Choose the billing day to close.' });
    const r = await api('POST', `/api/accounting/billing-days/${encodeURIComponent(date)}/close`);
    $('#close-result').textContent = `Closed ${r.billing_date}: paid ${r.accounts_paid} accounts ${formatMoney(r.total_paid)}`;
    await this.load();
  },
};

// ===== 6c. Analytics view (admin) =====

const analyticsView = {
  init() {
    $('#analytics-refresh').addEventListener('click', () => run($('#analytics-refresh'), () => this.load()));
    $('#analytics-period').addEventListener('change', () => run(null, () => this.loadTop()));
  },

  show() {
    return run(null, () => this.load());
  },

  poll() {
    return this.load();
  },

  load() {
    return Promise.all([this.loadSummary(), this.loadTop(), this.loadChart()]);
  },

  async loadSummary() {
    const summary = await api('GET', `/api/analytics/summary${query({ date: localDate() })}`);
    setMoney($('#analytics-earnings'), summary.management_earnings);
    $('#analytics-negative').textContent = String(summary.negative_balance_accounts);
  },

  /** The most expensive completed task; a 404 simply means none, so it is not an error. */
  async loadTop() {
    const target = $('#analytics-top');
    let task;
    try {
      task = await api('GET', `/api/analytics/most-expensive-task${query({ period: $('#analytics-period').value, date: localDate() })}`);
    } catch (err) {
      if (err.status !== 404) throw err;
      target.textContent = 'No task was completed in this period';
      return;
    }
    const title = task.title ?? `task ${task.task_id.slice(0, 8)}`;
    const name = task.jira_id ? `[${task.jira_id}] ${title}` : title;
    const when = task.completed_at ? `, completed ${formatTime(task.completed_at)}` : '';
    target.replaceChildren(el('strong', {}, name), ` — reward ${formatMoney(task.completion_reward)}${when}`);
  },

  async loadChart() {
    const days = await api('GET', `/api/analytics/days${query({ from: daysAgo(29), to: localDate() })}`);
    if (!changed('analytics-chart', days)) return;
    const points = days.map((d) => {
      const top = d.most_expensive_task;
      const topText = top ? `\nmost expensive task: ${top.title ?? top.task_id} (${formatMoney(top.completion_reward)})` : '';
      return {
        label: d.date,
        value: d.management_earnings,
        title: `${d.date}: management earnings ${formatMoney(d.management_earnings)}\n`
          + `accounts with a negative balance: ${d.negative_balance_accounts}${topText}`,
      };
    });
    drawChart($('#analytics-chart'), points, {
      label: 'Management earnings and negative-balance accounts per day',
      line: days.map((d) => d.negative_balance_accounts),
      lineName: 'accounts with a negative balance',
    });
  },
};

// ===== 6d. Accounts view (admin) =====

const ROLES = ['admin', 'manager', 'accountant', 'worker'];

const accountsView = {
  init() {
    $('#account-form').addEventListener('submit', (event) => {
      event.preventDefault();
      run($('#account-create'), () => this.create());
    });
    $('#set-password-form').addEventListener('submit', (event) => {
      event.preventDefault();
      run($('#set-password-submit'), () => this.setPassword());
    });
    // Delegated: rows are re-rendered after every change.
    $('#accounts-table').addEventListener('change', (event) => {
      const row = event.target.closest('tr[data-account-id]');
      if (!row) return;
      if (event.target.matches('select.account-role')) this.patch(row.dataset.accountId, { role: event.target.value }, event.target);
      if (event.target.matches('input.account-active')) this.patch(row.dataset.accountId, { active: event.target.checked }, event.target);
    });
  },

  show() {
    return run(null, () => this.load());
  },

  async load() {
    const { items } = await api('GET', '/api/accounts');
    for (const a of items) state.names.set(a.account_id, a.full_name || a.email);
    const body = $('#accounts-table tbody');
    body.replaceChildren(...items.map((a) => this.row(a)));
    if (!items.length) body.append(emptyRow(4, 'No accounts yet.'));
    const chosen = $('#set-password-account').value;
    $('#set-password-account').replaceChildren(...items.map((a) =>
      el('option', { value: a.account_id, selected: a.account_id === chosen }, a.email)));
  },

  async setPassword() {
    const select = $('#set-password-account');
    const email = select.selectedOptions[0]?.textContent;
    await api('PATCH', `/api/accounts/${encodeURIComponent(select.value)}`, { body: { password: $('#set-password-new').value } });
    $('#set-password-new').value = '';
    $('#set-password-notice').textContent = `Set a new password for ${email}; its sessions have ended.`;
  },

  row(account) {
    const id = account.account_id;
    const isMe = id === state.me.account_id;
    const roleSelect = el('select', { class: 'account-role', 'aria-label': `Role of ${account.email}` },
      ROLES.map((role) => el('option', { value: role, selected: role === account.role }, role)));
    const activeId = `active-${id}`;
    return el('tr', { dataset: { accountId: id }, class: account.active ? null : 'inactive' },
      el('td', {}, account.email),
      el('td', {}, account.full_name, isMe ? el('span', { class: 'muted small' }, ' (you)') : null),
      el('td', {}, roleSelect),
      el('td', {},
        el('input', { type: 'checkbox', id: activeId, class: 'account-active', checked: account.active }),
        ' ',
        el('label', { for: activeId }, account.active ? 'active' : 'inactive')));
  },

  /** PATCH one field; on refusal (e.g. the last admin) the detail shows and the row is restored. */
  async patch(accountId, change, control) {
    const saved = await run(control, async () => {
      const account = await api('PATCH', `/api/accounts/${encodeURIComponent(accountId)}`, { body: change });
      $('#accounts-notice').textContent = `Saved ${account.email}: ${account.role}, ${account.active ? 'active' : 'inactive'}.`;
      return true;
    });
    if (saved && accountId === state.me.account_id) {
      // Our own account changed: get a token carrying the new role, then rebuild header and view.
      await run(null, async () => {
        await refreshOrSignOut();
        await session.loadMe();
        route();
      });
      return;
    }
    // Re-read the table: after success it shows the server's state, after a refusal it puts
    // the control back. Not via run(), which would clear the refusal's banner.
    try {
      await this.load();
    } catch (err) {
      banner.show(messageOf(err));
    }
  },

  async create() {
    const body = {
      email: $('#account-email').value.trim(),
      full_name: $('#account-name').value.trim(),
      password: $('#account-password').value,
      role: $('#account-role').value,
    };
    const account = await api('POST', '/api/accounts', { body });
    $('#account-form').reset();
    $('#accounts-notice').textContent = `Created ${account.email} (${account.role}).`;
    await this.load();
  },
};

// ===== 6e. Operations view (admin) =====

// Every service serves its own part: where its work waits and what consumers parked from its
// stream (the service that produced a message is the one that may publish it again).
const OPS_SERVICES = ['auth', 'task-tracker', 'accounting', 'analytics'];

/** "3 s", "2 min", "1 h 5 min": how long the oldest unpublished event has waited. */
function formatAge(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A count cell: "unknown" when the server could not tell, red when it needs attention. */
function countCell(value, attention = value > 0) {
  if (value == null) return el('td', { class: 'count muted' }, 'unknown');
  return el('td', { class: attention ? 'count attention' : 'count' }, String(value));
}

const operationsView = {
  init() {
    $('#operations-refresh').addEventListener('click', () => run($('#operations-refresh'), () => this.load()));
    $('#ops-parked').addEventListener('click', (event) => {
      const button = event.target.closest('button.redrive');
      if (button) run(button, () => this.redrive(button.dataset.redrive, button.dataset.label));
    });
  },

  show() {
    $('#ops-notice').textContent = '';
    return run(null, () => this.load());
  },

  poll() {
    return this.load();
  },

  /** Each service's view; one that does not answer shows as unknown rather than failing all. */
  async load() {
    const answers = await Promise.allSettled(OPS_SERVICES.map((service) => api('GET', `/api/ops/${service}`)));
    const views = answers.map((answer, i) => (answer.status === 'fulfilled'
      ? answer.value
      : { service: OPS_SERVICES[i], failed: messageOf(answer.reason), waiting: { consumers: [] }, parked: [] }));
    // Decided before the change check: an outage that goes on must keep its banner.
    if (views.every((v) => v.failed)) throw answers[0].reason;
    if (!changed('operations', views)) return;
    this.render(views);
  },

  render(views) {
    const accounting = views.find((v) => v.service === 'accounting');
    $('#ops-last-closed').textContent = accounting?.last_closed_day ?? (accounting?.failed ? 'unknown' : 'none yet');
    const parked = views.flatMap((v) => v.parked);
    const more = views.some((v) => v.parked_more);
    const unknown = views.some((v) => v.failed || v.parked_known === false);
    $('#ops-parked-total').textContent = unknown && !parked.length ? 'unknown' : `${parked.length}${more || unknown ? '+' : ''}`;

    $('#ops-outbox tbody').replaceChildren(...views.filter((v) => v.failed || v.waiting.outbox !== null).map((v) => {
      if (v.failed) return el('tr', {}, el('td', {}, v.service), el('td', { colspan: 2, class: 'muted' }, v.failed));
      const { pending, oldest_seconds: oldest } = v.waiting.outbox;
      return el('tr', { dataset: { service: v.service } },
        el('td', {}, v.service),
        countCell(pending, oldest > 60),
        el('td', { class: oldest > 60 ? 'count attention' : 'count' }, pending ? formatAge(oldest) : '–'));
    }));

    const consumers = views.flatMap((v) => v.waiting.consumers);
    const consumerRows = consumers.map((c) => el('tr', { dataset: { consumer: c.consumer } },
      el('td', {}, c.consumer), el('td', {}, c.stream), countCell(c.pending, false), countCell(c.parked)));
    $('#ops-consumers tbody').replaceChildren(...(consumerRows.length ? consumerRows : [emptyRow(4, 'No consumer answered.')]));

    const rows = parked.map((p) => {
      const label = `DLQ message ${p.sequence}`;
      return el('tr', { dataset: { sequence: p.sequence } },
        el('td', { class: 'count' }, String(p.sequence)),
        el('td', {}, formatTime(p.parked_at)),
        el('td', {}, p.consumer),
        el('td', {}, p.event_name ?? p.subject, el('div', { class: 'muted small' }, `${p.stream} #${p.stream_sequence}`)),
        el('td', {}, el('strong', {}, p.reason), el('div', { class: 'muted small' }, p.detail)),
        el('td', {}, el('button', { type: 'button', class: 'redrive', dataset: { redrive: p.redrive, label } }, 'Re-drive')));
    });
    // A service that did not answer, or could not read the DLQ, may have parked messages.
    const unreadable = views.filter((v) => v.failed || v.parked_known === false).map((v) => v.service);
    const empty = unreadable.length ? `Could not read the parked messages of ${unreadable.join(', ')}.` : 'Nothing is parked.';
    $('#ops-parked tbody').replaceChildren(...(rows.length ? rows : [emptyRow(6, empty)]));
  },

  async redrive(path, label) {
    const done = await api('POST', path);
    $('#ops-notice').textContent = `${label} was published again on ${done.subject}.`;
    lastRendered.delete('operations');
    await this.load();
  },
};

// ===== 6f. Mail view (dev mode) =====

const mailView = {
  init() {
    $('#mail-refresh').addEventListener('click', () => run($('#mail-refresh'), () => this.load()));
  },

  show() {
    return run(null, () => this.load());
  },

  async load() {
    let mails;
    try {
      mails = await api('GET', '/api/dev/mail');
    } catch (err) {
      // Not a dev deployment (or no longer allowed): drop the tab instead of showing an error.
      if (err.status === 404 || err.status === 403) {
        state.canMail = false;
        renderHeader();
        location.hash = '#/tasks';
        return;
      }
      throw err;
    }
    const list = $('#mail-list');
    list.replaceChildren(...mails.map((m) => el('li', { class: 'mail' },
      el('details', {},
        el('summary', {},
          el('span', { class: 'mail-subject' }, m.subject),
          el('span', { class: 'mail-meta muted' }, `to ${m.to} · ${formatTime(m.date)}`)),
        el('pre', { class: 'mail-body' }, m.text)))));
    if (!mails.length) list.append(el('li', { class: 'muted' }, 'No emails have been written yet.'));
  },
};

// ===== 6g. Password view (everyone) =====

const passwordView = {
  init() {
    $('#password-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      // Every session has ended, this one's too: sign in again with the new password.
      if (await run($('#password-submit'), () => this.change())) {
        session.expire('Your password was changed: sign in with the new one.');
      }
    });
  },

  show() {},

  async change() {
    const body = { current_password: $('#password-current').value, new_password: $('#password-new').value };
    await api('POST', '/api/auth/password', { body });
    $('#password-form').reset();
    return true;
  },
};

const views = {
  tasks: tasksView, accounting: accountingView, analytics: analyticsView, accounts: accountsView,
  operations: operationsView, mail: mailView, password: passwordView,
};

// ===== 7. SVG chart =====

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Like el(), for SVG elements (which need their namespace). */
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) if (value != null) node.setAttribute(key, String(value));
  node.append(...children.filter((c) => c != null));
  return node;
}

/** A tooltip: SVG shows a <title> child on hover and reads it to screen readers. */
const tip = (text) => svg('title', {}, text);

/**
 * Bar chart of money per day: positive bars go up from the zero line, negative ones down.
 * points: [{label: 'YYYY-MM-DD', value: cents, title}]. options.line: optional second
 * series (counts), drawn as a line on its own scale at the right.
 */
function drawChart(container, points, { label = 'Chart', line = null, lineName = '' } = {}) {
  container.replaceChildren();
  if (!points.length) {
    container.append(el('p', { class: 'muted' }, 'No data for this period.'));
    return;
  }
  const W = 760;
  const H = 280;
  const m = { top: 16, right: line ? 44 : 16, bottom: 44, left: 72 };
  const plotW = W - m.left - m.right;
  const plotH = H - m.top - m.bottom;

  // Value scale always includes zero, so the zero line separates gains from losses.
  const values = points.map((p) => p.value);
  let max = Math.max(0, ...values);
  const min = Math.min(0, ...values);
  if (max === min) max = 100; // all zero: keep a sensible $1 scale
  const y = (v) => m.top + ((max - v) / (max - min)) * plotH;
  const slot = plotW / points.length;
  const barW = Math.max(2, slot * 0.7);
  const every = Math.ceil(points.length / 10); // at most ~10 date labels

  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, class: 'chart-svg' });
  root.append(
    svg('line', { x1: m.left, x2: W - m.right, y1: y(0), y2: y(0), class: 'axis' }),
    svg('text', { x: m.left - 8, y: y(max) + 4, class: 'tick', 'text-anchor': 'end' }, formatMoney(max)),
    svg('text', { x: m.left - 8, y: y(0) + 4, class: 'tick', 'text-anchor': 'end' }, '$0.00'));
  if (min < 0) root.append(svg('text', { x: m.left - 8, y: y(min) + 4, class: 'tick', 'text-anchor': 'end' }, formatMoney(min)));

  points.forEach((p, i) => {
    const x = m.left + i * slot;
    const top = Math.min(y(0), y(p.value));
    const height = Math.max(1, Math.abs(y(p.value) - y(0))); // zero days still show a hairline
    // A full-height invisible hit area makes the tooltip reachable even for tiny bars.
    root.append(svg('g', { class: 'day' }, tip(p.title),
      svg('rect', { x, y: m.top, width: slot, height: plotH, class: 'hit' }),
      svg('rect', { x: x + (slot - barW) / 2, y: top, width: barW, height, class: p.value < 0 ? 'bar negative' : 'bar' })));
    if (i % every === 0 || i === points.length - 1) {
      root.append(svg('text', { x: x + slot / 2, y: H - m.bottom + 16, class: 'tick', 'text-anchor': 'middle' }, p.label.slice(5)));
    }
  });

  if (line) drawLine(root, line, { x0: m.left, slot, top: m.top, plotH, right: W - m.right, name: lineName });
  container.append(root);
}

/** Second series for drawChart: counts as a polyline with dots and its own right-hand scale. */
function drawLine(root, values, { x0, slot, top, plotH, right, name }) {
  const max = Math.max(1, ...values);
  const y = (v) => top + (1 - v / max) * plotH;
  const xy = values.map((v, i) => [x0 + i * slot + slot / 2, y(v)]);
  root.append(
    svg('polyline', { points: xy.map(([x, yy]) => `${x},${yy}`).join(' '), class: 'line' }),
    svg('text', { x: right + 6, y: y(max) + 4, class: 'tick line-tick' }, String(max)),
    svg('text', { x: right + 6, y: y(0) + 4, class: 'tick line-tick' }, '0'));
  xy.forEach(([x, yy], i) => root.append(svg('circle', { cx: x, cy: yy, r: 3, class: 'dot' }, tip(`${values[i]} ${name}`))));
}

// ===== 8. Start-up =====

async function start() {
  initSession();
  for (const view of Object.values(views)) view.init();
  window.addEventListener('hashchange', route);
  if (!tokens.get()) {
    showSignIn(null);
    return;
  }
  // A reload keeps the tab's tokens: resume the session if they still work.
  try {
    await session.loadMe();
    showApp();
  } catch (err) {
    // A lost session already shows the sign-in form; for other failures (e.g. network)
    // keep the tokens and show the form with the reason, so the user can retry.
    if (!err.sessionLost) showSignIn(messageOf(err));
  }
}

document.addEventListener('DOMContentLoaded', start);
