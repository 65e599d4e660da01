// A developer explores the schema in GraphiQL, which reads it by
// introspection: the Documentation explorer lists Query's fields, typing
// `{ prod` offers `product` and `products`, and a query with a mistake is
// marked before it runs (nothing but introspection is sent).
// Usage: node graphiql-explorer.mjs <api url> <screenshot dir>
import { withPage } from './common.mjs';

const [api, shots] = process.argv.slice(2);
const queryFields = ['me', 'product', 'products', 'cart', 'order', 'myOrders'];

await withPage('graphiql-explorer', shots, {}, async (page) => {
  page.setDefaultTimeout(20_000);
  const sent = [];
  page.on('request', (request) => {
    if (request.method() === 'POST') sent.push(request.postData() ?? '');
  });
  await page.goto(`${api}/graphql`);
  const editor = page.locator('.graphiql-query-editor .CodeMirror').first();
  await editor.waitFor();

  // the explorer: the root types, then Query's fields
  await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
  const explorer = page.locator('.graphiql-doc-explorer');
  await explorer.getByText('Query', { exact: true }).first().click();
  const fields = explorer.locator('.graphiql-doc-explorer-field-name');
  await fields.first().waitFor();
  const listed = await fields.allTextContents();
  const missing = queryFields.filter((field) => !listed.includes(field));
  if (missing.length > 0) throw new Error(`the explorer lists ${listed.join(', ')}: not ${missing.join(', ')}`);
  await page.screenshot({ path: `${shots}/graphiql-explorer.png` });

  // completion: typed, as a developer would
  await editor.evaluate((element) => element.CodeMirror.setValue(''));
  await editor.click();
  await page.keyboard.type('{ prod', { delay: 30 });
  const hints = page.locator('.CodeMirror-hints .CodeMirror-hint');
  await hints.first().waitFor();
  const offered = await hints.allTextContents();
  for (const field of ['product', 'products']) {
    if (!offered.includes(field)) throw new Error(`typing { prod offers ${offered.join(', ')}: not ${field}`);
  }
  await page.screenshot({ path: `${shots}/graphiql-completion.png` });
  await page.keyboard.press('Escape');

  // a mistake, marked by the editor before anything runs
  await editor.evaluate((element) =>
    element.CodeMirror.setValue('{\n  products(first: 5) {\n    edges { node { name flavour } }\n  }\n}\n'),
  );
  const mark = page.locator('.CodeMirror-lint-mark-error', { hasText: 'flavour' });
  await mark.first().waitFor();
  await mark.first().hover();
  const tooltip = page.locator('.CodeMirror-lint-tooltip').getByText('Cannot query field "flavour"').first();
  await tooltip.waitFor();
  // the tooltip fades in
  await page.waitForFunction(() => getComputedStyle(document.querySelector('.CodeMirror-lint-tooltip')).opacity === '1');
  await page.screenshot({ path: `${shots}/graphiql-mistake.png` });

  const ran = sent.filter((body) => !body.includes('IntrospectionQuery'));
  if (ran.length > 0) throw new Error(`GraphiQL sent more than its introspection: ${ran.join(' | ')}`);
  if (sent.length === 0) throw new Error('GraphiQL never introspected');
});
console.log('graphiql-explorer: ok');
