// A developer watches live figures in GraphiQL: a subscription runs over
// GraphiQL's WebSocket, an order is placed meanwhile, and the new figures
// appear in the result pane.
// Usage: node graphiql-subscription.mjs <api url> <customer token> <product id> <screenshot dir>
import { withPage } from './common.mjs';

const [api, token, productId, shots] = process.argv.slice(2);
const subscription = `subscription { productFiguresChanged(productIds: ["${productId}"]) { name salesCount totalRevenue } }`;

/** Resolves once `condition()` holds; fails after `ms`. */
async function until(condition, ms, what) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

await withPage('graphiql-subscription', shots, {}, async (page) => {
  page.setDefaultTimeout(20_000);
  // GraphiQL picks the transport from the document it last parsed: run
  // right after the text changed, a subscription may still go over HTTP
  // (and be refused there). Each attempt ends one way or the other.
  const frames = [];
  let socketUrl = null;
  let overHttp = 0;
  page.on('websocket', (socket) => {
    socket.on('framesent', (frame) => {
      frames.push(`sent ${frame.payload}`);
      if (String(frame.payload).includes('"subscribe"')) socketUrl = socket.url();
    });
    socket.on('framereceived', (frame) => frames.push(`received ${frame.payload}`));
  });
  page.on('request', (request) => {
    if (request.method() === 'POST' && (request.postData() ?? '').includes('productFiguresChanged')) overHttp += 1;
  });
  await page.goto(`${api}/graphql`);
  const editor = page.locator('.graphiql-query-editor .CodeMirror').first();
  await editor.waitFor();
  await editor.evaluate((element, text) => element.CodeMirror.setValue(text), subscription);
  for (let attempt = 1; attempt <= 5 && socketUrl === null; attempt++) {
    await page.waitForTimeout(500);
    await page.locator('.graphiql-execute-button').click();
    await until(() => socketUrl !== null || overHttp >= attempt, 20_000, `attempt ${attempt} to subscribe; frames: ${frames.join(' | ')}`);
  }
  if (socketUrl !== `${api.replace(/^http/, 'ws')}/graphql`) throw new Error(`subscribed at ${socketUrl}`);
  // the product as it is comes first: from then on the server watches it
  await page.locator('.graphiql-response').getByText('"salesCount": 0').first().waitFor();

  const placed = await fetch(`${api}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: 'mutation ($id: ID!) { placeOrder(input: { items: [{ productId: $id, quantity: 3 }] }) { orderNumber } }',
      variables: { id: productId },
    }),
  }).then((response) => response.json());
  if (placed.errors) throw new Error(JSON.stringify(placed.errors));

  await page.locator('.graphiql-response').getByText('"salesCount": 3').first().waitFor();
  await page.locator('.graphiql-response').getByText('"totalRevenue": "40.50"').first().waitFor();
  await page.screenshot({ path: `${shots}/graphiql-subscription.png`, fullPage: true });
  console.log(`graphiql-subscription: ok after ${overHttp} attempt(s) over HTTP`);
});
