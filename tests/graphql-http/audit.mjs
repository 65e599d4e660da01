// Runs the graphql-http package's server audits (the GraphQL over HTTP spec)
// against a running Tally: `node audit.mjs http://127.0.0.1:8080/graphql`.
// Prints one line per audit and a JSON summary last; exits 1 when a
// mandatory (MUST) audit fails.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql url>');
  process.exit(2);
}

const results = [];
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  results.push(result);
  const mark = { ok: 'ok  ', notice: 'note', warn: 'warn', error: 'FAIL' }[result.status];
  console.log(`${mark} ${result.name}${result.reason ? ` — ${result.reason}` : ''}`);
}
const count = (status) => results.filter((r) => r.status === status).length;
const summary = {
  total: results.length,
  ok: count('ok'),
  notice: count('notice'),
  warn: count('warn'),
  error: count('error'),
};
console.log(JSON.stringify(summary));
process.exit(summary.error > 0 ? 1 : 0);
