// The console's and the portal's journeys in a real browser (Debian's chromium, driven by
// playwright-core), each in Persian (right to left) and in English, with axe-core checking
// every page visited for serious accessibility violations and the console listening for
// content security policy violations.
//
//   GATEWAY=http://127.0.0.1:PORT CREDENTIALS=DATA/demo-credentials.env node tests/journeys.mjs
//
// run.sh starts a demo gateway and runs this. Screenshots go to web/screenshots/.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const base = process.env.GATEWAY;
assert.ok(base, "GATEWAY is the gateway's URL");
const creds = Object.fromEntries(
  readFileSync(process.env.CREDENTIALS, "utf8")
    .split("\n")
    .filter((l) => l.includes("=") && !l.startsWith("#"))
    .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
);
const shots = join(web, "screenshots");
mkdirSync(shots, { recursive: true });
const axeSource = readFileSync(join(web, "node_modules/axe-core/axe.min.js"), "utf8");

// A fake SMS provider: the portal's sign-in codes arrive here.
const inbox = [];
const provider = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    inbox.push(JSON.parse(body));
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{}");
  });
});
await new Promise((r) => provider.listen(0, "127.0.0.1", r));
const providerUrl = `http://127.0.0.1:${provider.address().port}/sms`;

async function admin(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${creds.OPERATOR_TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

await admin("PUT", "/admin/v1/notifications/providers/sms", {
  url: providerUrl,
  headers: [],
  body_template: '{"to": {{ to }}, "text": {{ text }}, "id": {{ message_id }}}',
});

// Two members with points enough for the £10 airtime reward (1,000 points), one per language.
const rich = [];
for (let id = 1; rich.length < 2 && id <= 400; id++) {
  const m = await fetch(`${base}/admin/v1/members/${id}`, {
    headers: { authorization: `Bearer ${creds.OPERATOR_TOKEN}` },
  });
  if (!m.ok) continue;
  const b = await m.json();
  if (b.available >= 1200) rich.push({ id, ref: `TN${String(id).padStart(6, "0")}`, available: b.available });
}
assert.equal(rich.length, 2, "two members of the demo hold 1,200 points or more");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
  ],
});

const failures = [];
const checked = [];

async function axe(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  checked.push(`${name}: ${result.passes.length} rules passed, ${result.violations.length} violations (${bad.length} serious or critical)`);
  for (const v of bad) {
    failures.push(`${name}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
  }
}

async function look(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  await axe(page, name);
}

async function newPage(lang) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  // The language is chosen on the page's own switch below; this cookie starts it right.
  await context.addCookies([{ name: "lang", value: lang, url: base }]);
  const page = await context.newPage();
  page.on("console", (m) => {
    // A refused sign-in (401) and a refused campaign (422) are logged by the browser; they are
    // the refusals the journeys try on purpose. Anything else is a failure.
    if (m.type() === "error" && !/status of (401|422)/.test(m.text())) {
      failures.push(`${lang} console error: ${m.text()} at ${m.location().url}`);
    }
  });
  page.on("pageerror", (e) => failures.push(`${lang} page error: ${e.message}`));
  return { context, page };
}

async function operatorJourney(lang, period) {
  const { context, page } = await newPage(lang);
  await page.goto(`${base}/console`);
  assert.match(page.url(), /\/console\/sign-in$/);
  assert.equal(await page.getAttribute("html", "dir"), lang === "fa" ? "rtl" : "ltr");
  await look(page, `console-sign-in-${lang}`);
  // A wrong token is refused, and nothing is signed in.
  await page.fill("#token", "not-a-token");
  await page.click("button[type=submit]");
  assert.ok(await page.isVisible(".error"), "a wrong token is refused");
  await page.fill("#token", creds.OPERATOR_TOKEN);
  await Promise.all([page.waitForURL(/\/console\/dashboard$/), page.click("button[type=submit]")]);
  await page.waitForSelector("canvas[data-drawn]");
  const drawn = await page.$$eval("canvas[data-drawn]", (cs) =>
    Object.fromEntries(cs.map((c) => [c.id, Number(c.getAttribute("data-drawn"))])),
  );
  for (const id of ["chart-points-by-month", "chart-issued-by-partner", "chart-members-by-age", "chart-members-by-gender",
    "chart-members-by-city", "chart-members-by-spend", "chart-members-by-visit-interval", "chart-members-by-visits",
    "chart-members-by-rfm", "chart-members-by-month", "chart-expiring-by-month"]) {
    assert.ok(drawn[id] > 0, `${lang}: ${id} draws values (${JSON.stringify(drawn)})`);
  }
  const members = await page.textContent('[data-kpi="kpi-members"]');
  assert.ok(/[1-9۱-۹]/.test(members), `${lang}: the member count shows (${members})`);
  if (lang === "fa") assert.ok(/[۰-۹]/.test(members) && !/[0-9]/.test(members), `Persian digits: ${members}`);
  await look(page, `console-dashboard-${lang}`);
  // A chart's figures as CSV.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click('#fig-points-by-month a.csv'),
  ]);
  const csv = readFileSync(await download.path(), "utf8");
  const rows = csv.trim().split("\n");
  assert.equal(rows.length, 13, `${lang}: 12 months and a header in the CSV`);
  assert.ok(rows.slice(1).some((r) => r.split(",").slice(1).some((v) => Number(v) > 0)), "the CSV has figures");

  // A campaign, created and listed.
  await page.click('a[href="/console/campaigns"]');
  const name = lang === "fa" ? "امتیاز دوبرابر جمعه" : "Double points Friday";
  await page.fill("#c-name", name);
  await page.fill("#c-reason", lang === "fa" ? "آزمون مرورگر" : "browser journey");
  await page.selectOption("#c-partner", "2");
  await page.selectOption("#c-effect", "multiplier");
  await page.fill("#c-value", "2");
  await page.fill("#c-budget", "50000");
  await Promise.all([page.waitForURL(/created=/), page.click("form.form-grid button[type=submit]")]);
  assert.ok((await page.textContent("table")).includes(name), "the campaign is listed");
  // A wrong one is refused with the reason, and nothing is created.
  const before = (await page.$$("tbody tr")).length;
  await page.fill("#c-name", "bad");
  await page.fill("#c-reason", "x");
  await page.fill("#c-value", "1000");
  await page.click("form.form-grid button[type=submit]");
  assert.ok(await page.isVisible(".error"), "an out-of-range factor is refused");
  assert.equal((await page.$$("tbody tr")).length, before);
  await look(page, `console-campaigns-${lang}`);

  // A member looked up by a partner's card number, then adjusted.
  const member = rich[lang === "fa" ? 0 : 1];
  await page.click('a[href="/console/members"]');
  await page.fill("#q", `FC${String(member.id).padStart(6, "0")}`);
  await page.click("form.search button");
  await page.click(`a[href="/console/members/${member.id}"]`);
  const balanceBefore = await page.textContent("[data-balance]");
  await page.fill("#points", "250");
  await page.fill("#reason", lang === "fa" ? "جبران تأخیر پرواز" : "goodwill for a delayed flight");
  await page.fill("#reference", `journey-${lang}-${Date.now()}`);
  await Promise.all([page.waitForURL(/done=/), page.click("form[action$='/adjust'] button")]);
  const balanceAfter = await page.textContent("[data-balance]");
  assert.notEqual(balanceAfter, balanceBefore, "the balance moved");
  await look(page, `console-member-${lang}`);

  // A period closed; the settlements of a closed period as CSV.
  await page.click('a[href="/console/finance"]');
  await page.fill("#period", period);
  await Promise.all([page.waitForURL(/closed=/), page.click("form[action='/console/finance/close'] button")]);
  assert.ok((await page.textContent(".ok")).length > 0);
  const [settlements] = await Promise.all([
    page.waitForEvent("download"),
    page.click(`a[href="/console/finance/export/settlements.csv?period=${period}"]`),
  ]);
  const scsv = readFileSync(await settlements.path(), "utf8");
  assert.ok(scsv.split("\n").length > 1, "settlements CSV has a header and rows");
  await look(page, `console-finance-${lang}`);
  await page.click('a[href="/console/operations"]');
  await look(page, `console-operations-${lang}`);
  await page.click('a[href="/console/config"]');
  await look(page, `console-config-${lang}`);
  await context.close();
}

async function memberJourney(lang) {
  const member = rich[lang === "fa" ? 0 : 1];
  const { context, page } = await newPage(lang);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/portal`);
  assert.match(page.url(), /\/portal\/sign-in$/);
  await look(page, `portal-sign-in-${lang}`);
  // An unknown card gets the same answer as a known one.
  await page.fill("#identifier", "XX999999");
  await page.click("button[type=submit]");
  const unknownAnswer = await page.textContent("[role=status]");
  await page.goto(`${base}/portal/sign-in`);
  const sent = inbox.length;
  await page.fill("#identifier", member.ref);
  await page.click("button[type=submit]");
  assert.equal(await page.textContent("[role=status]"), unknownAnswer, "no way to learn which cards exist");
  let message;
  for (let i = 0; i < 100 && !message; i++) {
    message = inbox.slice(sent).find((m) => m.to === `+98912${String(member.id).padStart(7, "0")}`);
    if (!message) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(message, "the code reached the member's phone");
  const code = message.text.match(/[0-9۰-۹]{6}/)[0];
  // A wrong code first.
  await page.fill("#code", code === "000000" ? "111111" : "000000");
  await page.click("button[type=submit]");
  assert.ok(await page.isVisible(".error"));
  await page.fill("#code", code);
  await Promise.all([page.waitForURL(/\/portal$/), page.click("button[type=submit]")]);
  const balance = await page.textContent("[data-balance]");
  assert.ok(/[1-9۱-۹]/.test(balance), `the balance shows (${balance})`);
  await look(page, `portal-home-${lang}`);

  await page.click('nav a[href="/portal/rewards"]');
  const airtime = page.locator("li.reward", { hasText: lang === "fa" ? "۱۰ پوند شارژ" : "£10 of airtime" });
  await Promise.all([page.waitForURL(/issued=/), airtime.locator("button").click()]);
  const voucher = await page.textContent("[data-voucher]");
  assert.match(voucher.trim(), /^[0-9A-Z-]{8,}$/, `a voucher code (${voucher})`);
  await look(page, `portal-rewards-${lang}`);

  await page.click('nav a[href="/portal"]');
  assert.ok((await page.textContent("main")).includes(voucher.trim()), "the voucher is on the home page");
  await page.click('a[href^="/portal/surveys/"]');
  await page.check('input[name=score][value="9"]');
  await page.click("main button[type=submit]");
  await page.waitForSelector(".ok");
  await look(page, `portal-survey-${lang}`);
  // Points given to the other member, by its card number.
  const other = rich[lang === "fa" ? 1 : 0];
  await page.click('nav a[href="/portal/transfer"]');
  await page.fill("#to", `FF${String(other.id).padStart(6, "0")}`);
  await page.fill("#points", "100");
  await page.click("main button[type=submit]");
  await page.waitForSelector(".ok");
  await look(page, `portal-transfer-${lang}`);
  await page.click('nav a[href="/portal/statement"]');
  assert.ok((await page.textContent("main")).includes(lang === "fa" ? "انتقال" : "Transfer"), "the transfer is in the statement");
  await look(page, `portal-statement-${lang}`);
  await page.click('nav a[href="/portal/profile"]');
  await look(page, `portal-profile-${lang}`);
  await context.close();
}

const now = new Date();
const month = (back) => {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - back, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
};
try {
  await operatorJourney("fa", month(3));
  await operatorJourney("en", month(2));
  await memberJourney("fa");
  await memberJourney("en");
} catch (e) {
  failures.push(e.stack || String(e));
}
await browser.close();
provider.close();
writeFileSync(join(shots, "axe.txt"), checked.join("\n") + "\n");
console.log(checked.join("\n"));
if (failures.length) {
  console.error("FAILED:\n" + failures.join("\n"));
  process.exit(1);
}
console.log("browser journeys passed: operator and member, in Persian and English");
