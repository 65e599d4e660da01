// The operator without JavaScript: /retry lists the failed job with its
// error, its Retry form puts it back, and the page then lists none; it
// links back to the board.
// Usage: node retry-page.mjs <board url> <user> <password> <job id> <screenshot dir>
import { withPage } from './common.mjs';

const [board, username, password, jobId, shots] = process.argv.slice(2);

const options = { httpCredentials: { username, password }, javaScriptEnabled: false };
await withPage('retry-page', shots, options, async (page) => {
  page.setDefaultTimeout(20_000);
  await page.goto(`${board}/retry`);
  await page.getByText(/figures of product \d+ are frozen/).waitFor();
  if ((await page.getByRole('link', { name: '← Board' }).getAttribute('href')) !== '/') {
    throw new Error('/retry does not link back to the board');
  }
  await page.screenshot({ path: `${shots}/retry-page.png`, fullPage: true });

  await page.locator(`form:has(input[value="${jobId}"]) button`).click();
  await page.getByText('1 job(s) put back in the queue.').waitFor();
  // the retried job runs within moments: the page then lists no failed job
  for (let tries = 0; !(await page.getByText('No failed jobs.').isVisible()); tries++) {
    if (tries === 40) throw new Error('the retried job is still failed');
    await page.waitForTimeout(250);
    await page.goto(`${board}/retry`);
  }
  await page.screenshot({ path: `${shots}/retry-done.png`, fullPage: true });
});
console.log('retry page: ok');
