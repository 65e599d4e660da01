// Loads Tally's schema as the tools that introspect do (GraphiQL, GraphQL
// Code Generator, Apollo's and Relay's tooling, IDE plugins): graphql-js 16's
// and 17's standard introspection query, with every combination of their
// options, against a running Tally. Each must be answered without errors, and
// the schema built from the answer must print exactly as schema.graphql does.
// `node introspect.mjs http://127.0.0.1:8080/graphql ../../schema.graphql`
// Prints one line per query and exits 1 at the first failure.
import { readFileSync } from 'node:fs';
import * as graphql16 from 'graphql';
import * as graphql17 from 'graphql17';

const [url, sdlPath] = process.argv.slice(2);
if (!url || !sdlPath) {
  console.error('usage: node introspect.mjs <graphql url> <schema.graphql>');
  process.exit(2);
}

// Every boolean option of each version's getIntrospectionQuery, but
// graphql-js 17's experimentalDirectiveDeprecation: directive deprecation is
// no part of the GraphQL spec, and async-graphql has no such fields.
const versions = [
  {
    name: 'graphql-js 16',
    graphql: graphql16,
    options: ['descriptions', 'specifiedByUrl', 'directiveIsRepeatable', 'schemaDescription', 'inputValueDeprecation'],
  },
  {
    name: 'graphql-js 17',
    graphql: graphql17,
    options: [
      'descriptions',
      'specifiedByUrl',
      'directiveIsRepeatable',
      'schemaDescription',
      'inputValueDeprecation',
      'oneOf',
    ],
  },
];

async function introspect(query) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query, operationName: 'IntrospectionQuery' }),
  });
  const body = await response.json();
  if (response.status !== 200 || body.errors || !body.data?.__schema) {
    throw new Error(`HTTP ${response.status}: ${JSON.stringify(body).slice(0, 500)}`);
  }
  return body.data;
}

/** The schema as graphql-js prints it, its types and fields sorted. */
function printed(graphql, schema) {
  return graphql.printSchema(graphql.lexicographicSortSchema(schema));
}

function firstDifference(expected, actual) {
  const [a, b] = [expected.split('\n'), actual.split('\n')];
  const line = a.findIndex((text, i) => text !== b[i]);
  const at = line === -1 ? a.length : line;
  return `line ${at + 1}: schema.graphql has ${JSON.stringify(a[at])}, introspection gives ${JSON.stringify(b[at])}`;
}

const sdl = readFileSync(sdlPath, 'utf8');
let queries = 0;
for (const { name, graphql, options } of versions) {
  const expected = printed(graphql, graphql.buildSchema(sdl));
  for (let mask = 0; mask < 1 << options.length; mask++) {
    const chosen = Object.fromEntries(options.map((option, i) => [option, (mask & (1 << i)) !== 0]));
    const label = `${name} ${JSON.stringify(chosen)}`;
    const data = await introspect(graphql.getIntrospectionQuery(chosen)).catch((error) => {
      console.error(`FAIL ${label}: ${error.message}`);
      process.exit(1);
    });
    queries++;
    // with every option on, the answer is the whole schema: it must be the file's
    if (mask === (1 << options.length) - 1) {
      const actual = printed(graphql, graphql.buildClientSchema(data));
      if (actual !== expected) {
        console.error(`FAIL ${label}: the introspected schema differs, ${firstDifference(expected, actual)}`);
        process.exit(1);
      }
      console.log(`ok   ${label}: equal to schema.graphql (${actual.length} characters printed)`);
    } else {
      console.log(`ok   ${label}`);
    }
  }
}
console.log(JSON.stringify({ queries, failed: 0 }));
