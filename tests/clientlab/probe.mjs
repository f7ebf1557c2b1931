// Connect with one node client and print {"ok", "user", "ssl"} or {"ok": false, "error"} as JSON.
// argv: CLIENT (pg | drizzle | postgres) URL [OPTIONS_JSON]
import { createRequire } from "node:module";
const require = createRequire(process.env.NEONDOCTOR_NODE_DIR + "/package.json");
const [client, url] = process.argv.slice(2);
const QUERY = "select current_user::text as u, coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false) as s";
const done = (data) => { console.log(JSON.stringify(data)); process.exit(0); };
setTimeout(() => done({ ok: false, error: "timeout" }), 10000);
try {
  if (client === "pg") {
    const pg = require("pg");
    const options = process.argv[4] ? JSON.parse(process.argv[4]) : {};
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 8000, ...options });
    await c.connect();
    const r = await c.query(QUERY);
    await c.end();
    done({ ok: true, user: r.rows[0].u, ssl: r.rows[0].s });
  } else if (client === "drizzle") {
    const { drizzle } = require("drizzle-orm/node-postgres");
    const { sql } = require("drizzle-orm");
    const db = drizzle({ connection: { connectionString: url, connectionTimeoutMillis: 8000 } });
    const r = await db.execute(sql.raw(QUERY));
    await db.$client.end();
    done({ ok: true, user: r.rows[0].u, ssl: r.rows[0].s });
  } else if (client === "postgres") {
    const mod = require("postgres");
    const postgres = mod.default || mod;
    const options = process.argv[4] ? JSON.parse(process.argv[4]) : {};
    if (options.ssl && options.ssl.ca_file) {
      const { readFileSync } = await import("node:fs");
      options.ssl = { ca: readFileSync(options.ssl.ca_file).toString(), ...(options.ssl.no_host_check ? { checkServerIdentity: () => undefined } : {}) };
    }
    const sql = postgres(url, { connect_timeout: 8, onnotice: () => {}, ...options });
    const r = await sql.unsafe(QUERY);
    await sql.end();
    done({ ok: true, user: r[0].u, ssl: r[0].s });
  }
} catch (e) {
  const cause = e && e.cause ? ` | ${e.cause.code || ""} ${e.cause.message || e.cause}` : "";
  done({ ok: false, error: String(e && (e.code || "") + " " + (e.message || e)) + cause });
}
