// See index.html. Renders what the gateway answers; a fetch the browser refuses (CORS) shows
// as "blocked: <message>".
'use strict';

const params = new URLSearchParams(location.search);
const gateway = params.get('gateway');
const show = (id, text) => { document.getElementById(id).textContent = text; };

class HttpError extends Error {
  constructor(status, code) {
    super(`HTTP ${status} ${code}`);
    this.status = status;
    this.code = code;
  }
}

async function api(path, init) {
  const rsp = await fetch(gateway + path, init);
  const body = await rsp.json().catch(() => ({}));
  if (!rsp.ok) throw new HttpError(rsp.status, body.code || '');
  return body;
}

function claims(token) {
  const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(atob(part));
}

async function main() {
  // Same headers as the npm outseta-api-client: JSON content type (→ preflight) and a
  // lower-case "bearer" scheme.
  const login = await api('/api/v1/tokens', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: params.get('email'), password: params.get('password') }),
  });
  const token = login.access_token;
  const auth = { headers: { Authorization: 'bearer ' + token, 'Content-Type': 'application/json' } };

  const profile = await api('/api/v1/profile', auth);
  show('name', profile.FullName);
  show('email', profile.Email);
  show('person', profile.Uid);

  const accountUid = claims(token)['outseta:accountUid'];
  const account = await api(
    `/api/v1/crm/accounts/${accountUid}?fields=*,PersonAccount.*,PersonAccount.Person.Uid`,
    auth,
  );
  show('account', `${account.Name} (${account.Uid})`);
  show('members', (account.PersonAccount || []).map((pa) => pa.Person && pa.Person.Uid).join(','));

  // The gateway's refusal is readable by the page (its errors carry CORS headers).
  try {
    await api(`/api/v1/crm/people/${params.get('other')}`, auth);
    show('other', 'allowed');
  } catch (e) {
    show('other', e instanceof HttpError ? `refused ${e.status} ${e.code}` : `blocked: ${e.message}`);
  }
  show('status', 'ok');
}

main().catch((e) => {
  show('status', e instanceof TypeError ? `blocked: ${e.message}` : `error: ${e.message}`);
});
