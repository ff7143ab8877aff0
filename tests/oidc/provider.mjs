// A real OpenID Connect provider for the tests (panva's oidc-provider), set up like
// a Microsoft Entra tenant: issuer http://127.0.0.1:PORT/<tenant-id>/v2.0, ID tokens
// with tid and oid, RS256 keys with kid, client_secret_post, PKCE. Its development
// login screen takes any login name; the tests drive it with httpx.
//
// Environment: PORT, TENANT_ID, CLIENTS (JSON: [{client_id, client_secret,
// redirect_uris}]). Prints "ready <issuer>" once it listens.
//
// /_control/* (outside the issuer) lets a test shape what the provider does:
//   POST /_control/accounts   {"<login>": {claims...}}  who may log in; the login name
//                             is the subject (sub); "amr" goes into the session
//   POST /_control/rotate     a new signing key, published first; old keys stay listed
//   POST /_control/hide-keys  {"kids": [...]}  leave these keys out of the JWKS
//   POST /_control/hang       {"paths": ["/token", ...]}  never answer these paths
//   POST /_control/id-token-ttl {"seconds": n}
//   POST /_control/reset      no accounts, nothing hidden or hanging, the usual TTL,
//                             no requests counted
//   POST /_control/redirect-uris {"redirect_uris": [...]}  also accept these for every
//                             client (a browser test's server listens on a port of its own)
//   GET  /_control/stats      the signing keys' kids, newest first
//   GET  /_control/requests   {"/token": n, ...}  how many requests each path below the
//                             issuer received since the last reset (hanging ones too)

import crypto from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const tenant = process.env.TENANT_ID;
const prefix = `/${tenant}/v2.0`;
const issuer = `http://127.0.0.1:${port}${prefix}`;
const clients = JSON.parse(process.env.CLIENTS || '[]').map((c) => ({
  client_id: c.client_id,
  client_secret: c.client_secret,
  redirect_uris: c.redirect_uris,
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_post',
  id_token_signed_response_alg: 'RS256',
}));

const accounts = new Map();
const keys = []; // newest first: oidc-provider signs with the first key for the algorithm
let hiddenKids = new Set();
let hangPaths = new Set();
let idTokenTtl = 3600;
let requests = new Map(); // path below the issuer -> requests received
const cookieKeys = [crypto.randomBytes(32).toString('hex')];

function newKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `key-${crypto.randomUUID()}`, alg: 'RS256', use: 'sig' };
}

function stableUuid(text) {
  const h = crypto.createHash('sha256').update(text).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function publicJwk(key) {
  const { kty, n, e, kid, alg, use } = key;
  return { kty, n, e, kid, alg, use };
}

function build() {
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys },
    cookies: { keys: cookieKeys },
    // Entra puts the profile claims into the ID token itself.
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub', 'tid', 'oid', 'groups', 'amr'],
      profile: ['name', 'preferred_username'],
      email: ['email'],
    },
    pkce: { required: () => true },
    ttl: { IdToken: () => idTokenTtl },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      const account = accounts.get(id);
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          const { amr, ...claims } = account;
          return { tid: tenant, oid: stableUuid(id), ...claims, sub: id };
        },
      };
    },
  });
  // An account's "amr" (say ["pwd", "mfa"]) becomes the session's, as a provider
  // that ran a second factor reports it; the login screen itself asks for none.
  const finished = provider.interactionFinished.bind(provider);
  provider.interactionFinished = (req, res, result, options) => {
    const amr = result.login && accounts.get(result.login.accountId)?.amr;
    if (amr) result.login.amr = amr;
    return finished(req, res, result, options);
  };
  return provider;
}

keys.unshift(newKey());
let provider = build();

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString() || '{}';
      resolve(JSON.parse(text));
    });
  });
}

function answer(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function control(req, res, path) {
  const body = req.method === 'POST' ? await readBody(req) : {};
  switch (path) {
    case '/_control/accounts':
      for (const [login, claims] of Object.entries(body)) accounts.set(login, claims);
      return answer(res, 200, { accounts: [...accounts.keys()] });
    case '/_control/rotate':
      keys.unshift(newKey());
      provider = build();
      return answer(res, 200, { kids: keys.map((k) => k.kid) });
    case '/_control/hide-keys':
      hiddenKids = new Set(body.kids || []);
      return answer(res, 200, { hidden: [...hiddenKids] });
    case '/_control/hang':
      hangPaths = new Set(body.paths || []);
      return answer(res, 200, { hanging: [...hangPaths] });
    case '/_control/id-token-ttl':
      idTokenTtl = body.seconds;
      return answer(res, 200, { seconds: idTokenTtl });
    case '/_control/reset':
      hiddenKids = new Set();
      hangPaths = new Set();
      idTokenTtl = 3600;
      accounts.clear();
      requests = new Map();
      return answer(res, 200, {});
    case '/_control/redirect-uris':
      for (const client of clients) {
        client.redirect_uris = [...new Set([...client.redirect_uris, ...(body.redirect_uris || [])])];
      }
      provider = build();
      return answer(res, 200, { redirect_uris: clients.map((c) => c.redirect_uris) });
    case '/_control/stats':
      return answer(res, 200, { kids: keys.map((k) => k.kid) });
    case '/_control/requests':
      return answer(res, 200, Object.fromEntries(requests));
    default:
      return answer(res, 404, { error: 'no such control' });
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname.startsWith('/_control/')) {
    control(req, res, url.pathname).catch((e) => answer(res, 500, { error: String(e) }));
    return;
  }
  if (!url.pathname.startsWith(prefix)) {
    answer(res, 404, { error: 'not_found' });
    return;
  }
  const path = url.pathname.slice(prefix.length) || '/';
  requests.set(path, (requests.get(path) || 0) + 1);
  if (hangPaths.has(path)) return; // no answer, ever: the client's time-out decides
  if (path === '/jwks') {
    const published = keys.filter((k) => !hiddenKids.has(k.kid)).map(publicJwk);
    answer(res, 200, { keys: published });
    return;
  }
  // Mounted below the issuer's path, as Express would: oidc-provider reads the
  // mount path from originalUrl.
  req.originalUrl = req.url;
  req.url = req.url.slice(prefix.length) || '/';
  provider.callback()(req, res);
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
