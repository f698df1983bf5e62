// The real npm `outseta-api-client` (pinned in package.json) pointed at outseta-gateway, the
// way an SPA would use it:
//   - `store.baseUrl` replaces its hard-coded https://<subdomain>.outseta.com/api/v1/;
//   - `store.serverAuth = store.userAuth`, so the "admin-style" methods (crm.*) send the
//     user's `bearer <token>` instead of needing API keys the browser must never have.
//
// Usage: node outseta-api-client.mjs <gateway-url> <email> <password> <other-person-uid> <other-case-uid>
// Prints one JSON object, one entry per step; exits 0 only if every step did what it should
// (the refused step must be refused with 403).

import pkg from 'outseta-api-client';

// The package is CommonJS with `exports.default`.
const OutsetaApiClient = pkg.default ?? pkg;

const [gateway, email, password, otherUid, otherCaseUid] = process.argv.slice(2);
if (!otherCaseUid) {
  console.error('usage: outseta-api-client.mjs <gateway-url> <email> <password> <other-person-uid> <other-case-uid>');
  process.exit(2);
}

const client = new OutsetaApiClient({ subdomain: 'not-used' });
const store = client.user.store; // one Store, shared by every sub-client
store.baseUrl = new URL('/api/v1/', gateway).toString();
store.serverAuth = store.userAuth;

function claims(token) {
  const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(Buffer.from(part, 'base64').toString('utf8'));
}

// The client throws the fetch Response for a non-2xx answer.
async function failure(e) {
  if (e && typeof e === 'object' && 'status' in e && typeof e.text === 'function') {
    const text = await e.text();
    let body;
    try { body = JSON.parse(text); } catch { body = text; }
    return { status: e.status, contentType: e.headers.get('content-type'), body };
  }
  return { error: String(e && e.stack ? e.stack : e) };
}

const out = {};
async function step(name, fn) {
  try {
    out[name] = { ok: true, ...(await fn()) };
  } catch (e) {
    out[name] = { ok: false, ...(await failure(e)) };
  }
}

await step('login', async () => {
  const r = await client.user.login(email, password);
  return { tokenType: r.token_type, hasToken: typeof r.access_token === 'string' };
});
const token = store.userAuth.accessToken;
const c = token ? claims(token) : {};
out.claims = { sub: c.sub, accountUid: c['outseta:accountUid'] };

await step('profile', async () => {
  const p = await client.user.profile.get();
  return { uid: p.Uid, email: p.Email };
});
await step('person', async () => {
  const p = await client.crm.people.get(c.sub);
  return { uid: p.Uid, email: p.Email };
});
await step('account', async () => {
  // Sends fields=*,PersonAccount.*,PersonAccount.Person.Uid by default.
  const a = await client.crm.accounts.get(c['outseta:accountUid']);
  return {
    uid: a.Uid,
    name: a.Name,
    members: (a.PersonAccount ?? []).map((pa) => pa.Person && pa.Person.Uid),
  };
});
await step('plans', async () => {
  const l = await client.billing.plans.getAll();
  return { total: l.metadata.total, count: l.items.length };
});
await step('subscriptions', async () => {
  const l = await client.billing.subscriptions.getAll();
  return { count: l.items.length, uid: l.items[0] && l.items[0].Uid };
});
await step('subscription', async () => {
  // Sends fields=*,Account.Uid,Plan.Uid by default.
  const s = await client.billing.subscriptions.get(out.subscriptions.uid);
  return { uid: s.Uid, account: s.Account && s.Account.Uid };
});
// GET → change → PUT of the whole object read, then a read of the same person under its
// other path (cached by the 'person' step): the write invalidated it.
await step('profileUpdate', async () => {
  const p = await client.user.profile.get();
  p.FirstName = 'Zed';
  const u = await client.user.profile.update(p);
  return { firstName: u.FirstName };
});
await step('personAfterUpdate', async () => {
  const p = await client.crm.people.get(c.sub);
  return { uid: p.Uid, firstName: p.FirstName };
});
await step('cases', async () => {
  const l = await client.support.cases.getAll();
  return { count: l.items.length, uid: l.items[0] && l.items[0].Uid };
});
await step('reply', async () => {
  const r = await client.support.cases.addReplyFromClient({
    Case: { Uid: out.cases.uid },
    Comment: 'thanks',
  });
  return { uid: r.Uid };
});
await step('otherReply', async () => {
  const r = await client.support.cases.addReplyFromClient({
    Case: { Uid: otherCaseUid },
    Comment: 'hijack',
  });
  return { uid: r.Uid };
});
await step('otherPerson', async () => {
  const p = await client.crm.people.get(otherUid);
  return { uid: p.Uid, email: p.Email };
});

const good =
  out.login.ok && out.login.hasToken &&
  out.profile.ok && out.profile.uid === c.sub &&
  out.person.ok && out.person.uid === c.sub &&
  out.account.ok && out.account.uid === c['outseta:accountUid'] &&
  out.plans.ok && out.plans.count > 0 &&
  out.subscriptions.ok && out.subscriptions.count > 0 &&
  out.subscription.ok && out.subscription.uid === out.subscriptions.uid &&
  out.subscription.account === c['outseta:accountUid'] &&
  out.profileUpdate.ok && out.profileUpdate.firstName === 'Zed' &&
  out.personAfterUpdate.ok && out.personAfterUpdate.firstName === 'Zed' &&
  out.cases.ok && out.cases.count > 0 &&
  out.reply.ok && out.reply.uid === out.cases.uid &&
  !out.otherReply.ok && out.otherReply.status === 403 &&
  !out.otherPerson.ok && out.otherPerson.status === 403;
out.good = good;
console.log(JSON.stringify(out, null, 2));
process.exit(good ? 0 : 1);
