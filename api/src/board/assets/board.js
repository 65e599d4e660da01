// Tally's additions to the apalis board (served by api/src/board/page.rs):
// a failed job's last error and a Retry on its page, Retry all on a queue's
// Failed and Killed tabs, a search by order number, and a link to /retry.
//
// The board is a WebAssembly app that renders and re-renders the page as the
// operator moves through it, so this script looks at the page after every
// change and adds what is missing. It is written for apalis-board 1.0's
// routes and markup (page.rs pins the release); all it calls is Tally's own
// JSON under /tally/api, on this listener, with the board's credentials.

const QUEUE_TAB = /^\/queues\/([^/]+)\/(Failed|Killed)$/;
const TASK_PAGE = /^\/queues\/([^/]+)\/tasks\/([^/]+)$/;
// what the page says once it reloads after an action (sessionStorage)
const NOTICE_KEY = 'tally-board-notice';

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(`/tally/api${path}`, { credentials: 'same-origin', ...options });
  let body = null;
  try {
    body = await response.json();
  } catch {
    // an answer that is no JSON (a proxy's error page): say its status
  }
  if (!response.ok) {
    throw new Error(body?.error ?? `the board answered ${response.status} ${response.statusText}`);
  }
  return body;
}

function say(box, text, kind = 'info') {
  box.replaceChildren(text);
  box.className = `tally-message tally-message-${kind}`;
}

// A button that asks before it acts: a first click shows the question with
// a confirm and a cancel button in its place.
function confirming(label, question, act) {
  const holder = element('span', { class: 'tally-confirm' });
  const start = element('button', { class: 'tally-button', type: 'button' }, label);
  start.onclick = () => {
    const yes = element('button', { class: 'tally-button tally-button-danger', type: 'button' }, `Yes, ${label.toLowerCase()}`);
    const no = element('button', { class: 'tally-button tally-button-quiet', type: 'button' }, 'Cancel');
    no.onclick = () => holder.replaceChildren(start);
    yes.onclick = async () => {
      yes.disabled = no.disabled = true;
      await act();
      holder.replaceChildren(start);
    };
    holder.replaceChildren(element('span', { class: 'tally-question' }, question), yes, no);
  };
  holder.append(start);
  return holder;
}

// Shows `text` after the reload that refreshes the board's own view.
function reloadSaying(text) {
  sessionStorage.setItem(NOTICE_KEY, JSON.stringify({ path: location.pathname, text }));
  location.reload();
}

function takeNotice() {
  const saved = sessionStorage.getItem(NOTICE_KEY);
  if (!saved) return null;
  const { path, text } = JSON.parse(saved);
  if (path !== location.pathname) return null;
  sessionStorage.removeItem(NOTICE_KEY);
  return text;
}

// ---- a job's page: its order, its last error, Retry ----

async function jobPanel(header, taskId) {
  const panel = element('section', { class: 'tally-panel', 'data-tally-task': taskId });
  header.after(panel);
  try {
    showJob(panel, await api(`/jobs/${encodeURIComponent(taskId)}`));
  } catch (error) {
    const message = element('p', { class: 'tally-message', role: 'status' });
    panel.append(message);
    say(message, `Tally could not read this job: ${error.message}`, 'error');
  }
}

function showJob(panel, job, outcome) {
  const failed = job.status === 'Failed' || job.status === 'Killed';
  const order = job.orderNumber
    ? `${job.orderNumber}${job.cancellation ? ' (its cancellation)' : ''}`
    : 'no order';
  const message = element('p', { class: 'tally-message', role: 'status' });
  panel.replaceChildren(
    element('div', { class: 'tally-facts' },
      element('span', {}, 'Order ', element('strong', { class: 'tally-order' }, order)),
      element('span', {}, 'Status ', element('strong', { class: `tally-status tally-status-${job.status}`, 'data-tally-status': job.status }, job.status)),
      element('span', {}, `Attempts ${job.attempts} of ${job.maxAttempts}`)),
  );
  if (job.lastError) {
    panel.append(element('div', { class: 'tally-error-box' },
      element('h3', {}, failed ? 'Error of the last attempt' : 'Error of an earlier attempt'),
      element('pre', { class: 'tally-error', 'data-tally-error': '' }, job.lastError)));
  } else if (failed) {
    panel.append(element('p', { class: 'tally-dimmed' }, 'No error was recorded for the last attempt.'));
  }
  if (failed) {
    panel.append(element('div', { class: 'tally-actions' },
      confirming('Retry', `Put ${job.orderNumber ?? 'this job'} back in the queue, its attempts reset?`, async () => {
        try {
          await api(`/jobs/${encodeURIComponent(job.id)}/retry`, { method: 'POST' });
          say(message, 'Put back in the queue; waiting for a worker to run it…');
          await untilSettled(panel, job.id, message);
        } catch (error) {
          say(message, `Retry failed: ${error.message}`, 'error');
        }
      })));
  }
  panel.append(message);
  if (outcome) say(message, ...outcome);
}

// Follows a retried job until a worker has run it, then shows where it
// ended. The page is not reloaded: the Events panel keeps the run's lines.
async function untilSettled(panel, taskId, message) {
  for (let tries = 0; tries < 120; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const job = await api(`/jobs/${encodeURIComponent(taskId)}`);
    if (job.status === 'Done') {
      return showJob(panel, job, ['Retried: the job ran again and is Done (reload for the board\'s own view).', 'success']);
    }
    if (job.status === 'Failed' || job.status === 'Killed') {
      return showJob(panel, job, [`Retried, and it failed again: ${job.status}.`, 'error']);
    }
    say(message, `Put back in the queue; the job is ${job.status}…`);
  }
  say(message, 'Put back in the queue; no worker has finished it yet (is one running?).', 'error');
}

// ---- a queue's Failed and Killed tabs: Retry all ----

function retryAllBar(table, status) {
  const bar = element('div', { class: 'tally-panel tally-bar', 'data-tally-retry-all': status });
  const message = element('span', { class: 'tally-message', role: 'status' });
  bar.append(
    element('span', {}, `${status} jobs wait for an operator. Retrying one counts its order at most once.`),
    confirming('Retry all', 'Put every failed and killed job of the queue back?', async () => {
      try {
        const { retried } = await api('/jobs/retry-failed', { method: 'POST' });
        reloadSaying(`${retried.length} job(s) put back in the queue.`);
      } catch (error) {
        say(message, `Retry failed: ${error.message}`, 'error');
      }
    }),
    message,
  );
  table.before(bar);
  const notice = takeNotice();
  if (notice) say(message, notice, 'success');
}

// ---- the sidebar: search by order number, the /retry page ----

function sidebarSection(manage) {
  const result = element('div', { class: 'tally-search-result', role: 'status' });
  const input = element('input', {
    class: 'tally-input', type: 'search', name: 'order', placeholder: 'ORD-00000042',
    'aria-label': 'Order number', autocomplete: 'off',
  });
  const form = element('form', { class: 'tally-search', role: 'search' }, input,
    element('button', { class: 'tally-button', type: 'submit' }, 'Find'));
  form.onsubmit = async (event) => {
    event.preventDefault();
    result.replaceChildren();
    try {
      const found = await api(`/jobs?order=${encodeURIComponent(input.value)}`);
      if (found.jobs.length === 1) {
        location.assign(found.jobs[0].url);
      } else if (found.jobs.length === 0) {
        result.append(`No job for ${found.orderNumber}.`);
      } else {
        result.append(...found.jobs.map((job) => element('a', { href: job.url, class: 'tally-link' },
          `${job.cancellation ? 'Cancellation' : 'Order'} job: ${job.status}`)));
      }
    } catch (error) {
      result.append(error.message);
    }
  };
  return element('div', { class: 'tally-sidebar', 'data-tally-sidebar': '' },
    element('h2', {}, 'Tally'),
    form,
    result,
    element('a', { href: '/retry', class: 'tally-link' }, 'Failed jobs (no-script page)'));
}

// ---- putting it together on every change of the page ----

function sync() {
  const logs = document.querySelector('a[href="/logs"]');
  if (logs && !document.querySelector('[data-tally-sidebar]')) {
    // the links' box sits in the "Manage" section: Tally's goes after it
    logs.parentElement.parentElement.after(sidebarSection());
  }
  const path = location.pathname;
  const task = path.match(TASK_PAGE);
  // what an earlier route left behind, where the board kept its markup
  for (const stale of document.querySelectorAll('[data-tally-task], [data-tally-retry-all]')) {
    const current = task
      ? stale.dataset.tallyTask === decodeURIComponent(task[2])
      : stale.dataset.tallyRetryAll === path.match(QUEUE_TAB)?.[2];
    if (!current) stale.remove();
  }
  if (task) {
    const taskId = decodeURIComponent(task[2]);
    const heading = [...document.querySelectorAll('main h4')].find((h) => h.textContent.trim() === taskId);
    if (heading && !document.querySelector(`[data-tally-task="${CSS.escape(taskId)}"]`)) {
      jobPanel(heading.parentElement, taskId);
    }
  }
  const tab = path.match(QUEUE_TAB);
  if (tab) {
    const table = document.querySelector('main table');
    if (table && !document.querySelector(`[data-tally-retry-all="${tab[2]}"]`)) {
      retryAllBar(table, tab[2]);
    }
  }
}

let scheduled = false;
new MutationObserver(() => {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    sync();
  });
}).observe(document.body, { childList: true, subtree: true });
sync();
