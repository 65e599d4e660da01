// The operator's path through the board itself: the Failed tab, a failed
// job's page with its error, Retry there (the job runs again, its lines in
// the Events panel and on the Logs page), the order-number search, and Retry
// all on the Failed tab. A screenshot of each step goes to <screenshot dir>.
// Usage: node board.mjs <board url> <user> <password> <job A> <job B>
//        <order number of B> <screenshot dir>
import { withPage } from './common.mjs';

const [board, username, password, jobA, jobB, orderB, shots] = process.argv.slice(2);
// the trigger's words, as PostgreSQL reported them to the job
const ERROR = /figures of product \d+ are frozen/;
const APPLIED = 'post-order figures applied';

await withPage('board', shots, { httpCredentials: { username, password } }, async (page) => {
  page.setDefaultTimeout(20_000);
  // the Logs page, open beside the board from the start: it shows what
  // arrives while it is open
  const logs = await page.context().newPage();
  await logs.goto(`${board}/logs`);
  await logs.getByRole('heading', { name: 'Logs' }).waitFor();

  // Queues → order_analytics → Failed: the failed jobs, and Retry all
  await page.goto(`${board}/`);
  await page.getByRole('link', { name: 'Queues' }).click();
  await page.getByText('order_analytics').first().click();
  await page.getByRole('link', { name: 'Failed', exact: true }).click();
  await page.locator(`a[href$="/tasks/${jobA}"]`).waitFor();
  await page.getByRole('button', { name: 'Retry all' }).waitFor();
  await page.screenshot({ path: `${shots}/1-failed-tab.png` });

  // a failed job's page says why it failed
  await page.locator(`a[href$="/tasks/${jobA}"]`).click();
  await page.waitForURL(`**/tasks/${jobA}`);
  const error = page.locator('[data-tally-error]');
  await error.waitFor();
  if (!ERROR.test(await error.textContent())) {
    throw new Error(`the job's page shows ${await error.textContent()}, not its error`);
  }
  await page.screenshot({ path: `${shots}/2-failed-job.png` });

  // Retry asks first, then the job runs again and is Done
  await page.getByRole('button', { name: 'Retry', exact: true }).click();
  await page.getByText('back in the queue, its attempts reset?').waitFor();
  await page.getByRole('button', { name: 'Yes, retry' }).click();
  await page.getByText('Retried: the job ran again and is Done').waitFor();
  await page.locator('[data-tally-status="Done"]').waitFor();
  // the run's own line, in this task's Events panel
  await page.locator('main').getByText(APPLIED).waitFor();
  await page.screenshot({ path: `${shots}/3-retried-job.png` });

  // the Logs page shows the worker's line, filed under the task
  try {
    await logs.locator('div').filter({ hasText: `[${jobA}]` }).filter({ hasText: APPLIED }).last().waitFor({ timeout: 10_000 });
  } catch (error) {
    await logs.screenshot({ path: `${shots}/failure-logs.png`, fullPage: true });
    console.log(await logs.evaluate(() => document.querySelector('main')?.innerText.slice(0, 3000)));
    throw error;
  }
  await logs.screenshot({ path: `${shots}/4-logs.png` });

  // the search opens an order's job; typed in lower case, as operators do
  await page.getByRole('searchbox', { name: 'Order number' }).fill(orderB.toLowerCase());
  await page.getByRole('button', { name: 'Find' }).click();
  await page.waitForURL(`**/tasks/${jobB}`);
  await page.locator('.tally-order', { hasText: orderB }).waitFor();
  await page.screenshot({ path: `${shots}/5-search.png` });

  // Retry all on the Failed tab: asks, then says how many went back
  await page.goto(`${board}/queues/order_analytics/Failed`);
  await page.locator(`a[href$="/tasks/${jobB}"]`).waitFor();
  await page.getByRole('button', { name: 'Retry all' }).click();
  await page.getByRole('button', { name: 'Yes, retry all' }).click();
  await page.getByText('2 job(s) put back in the queue.').waitFor();
  await page.screenshot({ path: `${shots}/6-retry-all.png` });
});
console.log('board: ok');
