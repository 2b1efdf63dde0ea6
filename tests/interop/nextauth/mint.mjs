// Mints a site session cookie with the REAL next-auth (v4) or @auth/core (Auth.js v5) code, as
// the site's sign-in would set it: the library's own `encode`, its own cookie names
// (`defaultCookies`) and its own `SessionStore` chunking (cookies over ~4 KB become `.0`, `.1`, …).
//
// Usage: node mint.mjs '<json>' with
//   {"flavor": "v4" | "v5", "secret": "...", "claims": {"sub": "u1", ...},
//    "secure": false, "max_age_s": 3600}
// Prints {"cookies": [{"name": ..., "value": ...}, ...]} on stdout.
//
// SessionStore and defaultCookies are not in either package's export map, so they are loaded
// from their files: this pins the test to the installed versions (package-lock.json), which is
// the point.

import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const logger = { debug() {}, warn() {}, error() {} };

async function mintV4({ secret, claims, secure, max_age_s }) {
  const { encode, decode } = require("next-auth/jwt");
  const { SessionStore, defaultCookies } = require(
    join(here, "node_modules/next-auth/core/lib/cookie.js"),
  );
  const option = defaultCookies(secure).sessionToken;
  const value = await encode({ token: claims, secret, maxAge: max_age_s });
  if (max_age_s > 0) await decode({ token: value, secret }); // the library reads back its own
  const store = new SessionStore(option, { cookies: {}, headers: {} }, logger);
  return store.chunk(value, {});
}

async function mintV5({ secret, claims, secure, max_age_s }) {
  const { encode, decode } = await import("@auth/core/jwt");
  const { SessionStore, defaultCookies } = await import(
    pathToFileURL(join(here, "node_modules/@auth/core/lib/utils/cookie.js")).href
  );
  const option = defaultCookies(secure).sessionToken;
  // Auth.js salts the key derivation with the cookie's name, as its handlers do.
  const salt = option.name;
  const value = await encode({ token: claims, secret, salt, maxAge: max_age_s });
  if (max_age_s > 0) await decode({ token: value, secret, salt });
  const store = new SessionStore(option, {}, logger);
  return store.chunk(value, {});
}

const request = JSON.parse(process.argv[2]);
const mint = { v4: mintV4, v5: mintV5 }[request.flavor];
if (!mint) throw new Error(`unknown flavor ${request.flavor}`);
const cookies = await mint(request);
process.stdout.write(
  JSON.stringify({ cookies: cookies.map(({ name, value }) => ({ name, value })) }),
);
