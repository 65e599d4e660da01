// The operator's path: open the board with basic auth, find the analytics
// queue and its failed job, retry it from /retry, and see it done.
// Usage: node board.mjs <board url> <user> <password> <job id> <screenshot dir>
import { withPage } from './common.mjs';

const [board, username, password, jobId, shots] = process.argv.slice(2);
const short = jobId.slice(0, 8);

await withPage('board', shots, { httpCredentials: { username, password } }, async (page) => {
  page.setDefaultTimeout(20_000);
  await page.goto(`${board}/`);
  await page.getByRole('link', { name: 'Queues' }).click();
  await page.getByText('order_analytics').first().click();
  await page.getByText('Failed', { exact: true }).click();
  await page.getByText(short).first().waitFor();
  await page.screenshot({ path: `${shots}/board-failed-job.png`, fullPage: true });

  await page.goto(`${board}/retry`);
  await page.locator(`form:has(input[value="${jobId}"]) button`).click();
  await page.getByText('1 job(s) put back in the queue.').waitFor();
  // the retried job runs within moments: the page then lists no failed job
  for (let tries = 0; !(await page.getByText('No failed jobs.').isVisible()); tries++) {
    if (tries === 40) throw new Error('the retried job is still failed');
    await page.waitForTimeout(250);
    await page.goto(`${board}/retry`);
  }
  await page.screenshot({ path: `${shots}/retry-done.png`, fullPage: true });

  await page.goto(`${board}/queues/order_analytics`);
  await page.getByText('Done', { exact: true }).click();
  await page.getByText(short).first().waitFor();
  await page.screenshot({ path: `${shots}/board-done-job.png`, fullPage: true });
});
console.log('board: ok');
