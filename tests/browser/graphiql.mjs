// A developer's path: open GraphiQL, run a query, see its result.
// Usage: node graphiql.mjs <api url> <expected text> <screenshot dir>
import { withPage } from './common.mjs';

const [api, expected, shots] = process.argv.slice(2);
const query = '{ products(first: 5) { edges { node { name price } } } }';

await withPage('graphiql', shots, {}, async (page) => {
  page.setDefaultTimeout(20_000);
  const offsite = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(api) && !request.url().startsWith('data:')) offsite.push(request.url());
  });
  await page.goto(`${api}/graphql`);
  const editor = page.locator('.graphiql-query-editor .CodeMirror').first();
  await editor.waitFor();
  await editor.evaluate((element, text) => element.CodeMirror.setValue(text), query);
  await page.locator('.graphiql-execute-button').click();
  await page.locator('.graphiql-response').getByText(expected).first().waitFor();
  await page.screenshot({ path: `${shots}/graphiql.png`, fullPage: true });
  if (offsite.length > 0) throw new Error(`GraphiQL reached off the server: ${offsite.join(', ')}`);
});
console.log('graphiql: ok');
