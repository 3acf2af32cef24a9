// Drives kbroker's web console in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core; no browser is downloaded) and reports what the page shows.
//
//   node console_page.js '{"url": "http://127.0.0.1:PORT/", "shots": "/dir", "steps": [...]}'
//
// One browser and one page run every step in order; each step navigates by hash, acts like a
// user (fills forms, clicks) and reads the page's text back. The result is one JSON line:
// {"results": [<one object per step>], "screenshots": [<paths>]}. Assertions are the Python
// test's (compat-tests/test_console.py); a step that cannot find what it waits for fails the run.
"use strict";

const path = require("path");
const { chromium } = require("playwright-core");

const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                       "--disable-component-update", "--no-first-run"];
const WAIT_MS = 20000;

async function open(page, hash) {
  // Mark the view stale first: the router sets "ready" again once this route's content is in.
  await page.evaluate(h => {
    document.getElementById("view").dataset.state = "loading";
    if (location.hash === h) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = h;
  }, hash);
  await page.waitForSelector('#view[data-state="ready"]', {timeout: WAIT_MS});
}

const texts = (page, selector) => page.$$eval(selector, nodes => nodes.map(n => n.textContent));

async function rowCells(page, table, attribute) {
  // {row's data-<attribute>: {column's data-col: text}}
  return page.$$eval(`[data-testid="${table}"] tbody tr`, (rows, attr) => Object.fromEntries(rows.map(row => [
    row.getAttribute(`data-${attr}`),
    Object.fromEntries([...row.querySelectorAll("[data-col]")].map(c => [c.dataset.col, c.textContent])),
  ])), attribute);
}

async function browse(page, step, format) {
  const form = '[data-testid="browse-form"]';
  await page.selectOption(`${form} select[name=partition]`, String(step.partition));
  await page.selectOption(`${form} select[name=from]`, step.from || "offset");
  await page.fill(`${form} input[name=position]`, String(step.position ?? 0));
  await page.fill(`${form} input[name=search]`, step.search || "");
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector('[data-testid="message-table"], [data-testid="messages"] .error', {timeout: WAIT_MS});
  await page.selectOption(`${form} select[name=format]`, format);
  return rowCells(page, "message-table", "offset");
}

const STEPS = {
  async brokers(page) {
    await open(page, "#/brokers");
    return {controller: await page.textContent('[data-testid="controller"]'),
            brokers: await page.$$eval('[data-testid="brokers"] tbody tr', rows => rows.map(r => r.dataset.broker))};
  },
  async topics(page) {
    await open(page, "#/topics");
    return {topics: await rowCells(page, "topics", "topic")};
  },
  async topic(page, step) {
    await open(page, `#/topics/${encodeURIComponent(step.topic)}`);
    const notFound = await page.$('[data-testid="not-found"]');
    if (notFound) return {not_found: await notFound.textContent()};
    return {partitions: await rowCells(page, "partitions", "partition"),
            configs: await page.$$eval('[data-testid="configs"] tbody tr', rows => rows.map(r => r.dataset.config))};
  },
  async browse(page, step) {
    await open(page, `#/topics/${encodeURIComponent(step.topic)}`);
    const text = await browse(page, step, "text");
    await page.selectOption('[data-testid="browse-form"] select[name=format]', "hex");
    const hex = await rowCells(page, "message-table", "offset");
    await page.selectOption('[data-testid="browse-form"] select[name=format]', "json");
    const json = await rowCells(page, "message-table", "offset");
    await page.selectOption('[data-testid="browse-form"] select[name=format]', "text");
    return {text, hex, json, window: await page.textContent('[data-testid="window"]')};
  },
  async produce(page, step) {
    await open(page, `#/topics/${encodeURIComponent(step.topic)}`);
    const form = '[data-testid="produce-form"]';
    await page.selectOption(`${form} select[name=partition]`, String(step.partition));
    await page.fill(`${form} input[name=key]`, step.key);
    await page.fill(`${form} textarea[name=value]`, step.value);
    await page.fill(`${form} textarea[name=headers]`, Object.entries(step.headers || {}).map(([k, v]) => `${k}=${v}`).join("\n"));
    await page.click(`${form} button[type=submit]`);
    await page.waitForSelector('[data-testid="produce-status"] :is(.ok, .error)', {timeout: WAIT_MS});
    return {status: await page.textContent('[data-testid="produce-status"]')};
  },
  async group(page, step) {
    await open(page, `#/groups/${encodeURIComponent(step.group)}`);
    const notFound = await page.$('[data-testid="not-found"]');
    if (notFound) return {not_found: await notFound.textContent()};
    const unavailable = await page.$('[data-testid="reset-unavailable"]');
    return {state: await page.textContent('[data-testid="group-state"]'),
            members: await page.$$eval('[data-testid="members"] tbody tr',
                                       rows => rows.map(r => [...r.cells].map(c => c.textContent))),
            total_lag: await page.textContent('[data-testid="total-lag"]'),
            offsets: await rowCells(page, "group-offsets", "tp"),
            reset_unavailable: unavailable ? await unavailable.textContent() : null};
  },
  async reset(page, step) {
    await open(page, `#/groups/${encodeURIComponent(step.group)}`);
    const form = '[data-testid="reset-form"]';
    await page.selectOption(`${form} select[name=topic]`, step.topic);
    await page.selectOption(`${form} select[name=to]`, step.to);
    await page.evaluate(() => { document.getElementById("view").dataset.state = "loading"; });
    await page.click(`${form} button[type=submit]`);
    await page.waitForSelector('#view[data-state="ready"], [data-testid="reset-status"] .error', {timeout: WAIT_MS});
    const flash = await page.$('[data-testid="flash"]');
    return {offsets: await rowCells(page, "group-offsets", "tp"), flash: flash ? await flash.textContent() : null,
            errors: await texts(page, '[data-testid="reset-status"] .error')};
  },
  async throughput(page, step) {
    await open(page, "#/throughput");
    // The first sample has nothing to compare with; the page polls again every 2 s, until the
    // topic being produced to shows a rate above 0.
    await page.waitForFunction(topic => {
      const rate = document.querySelector(`[data-testid="throughput-table"] tr[data-topic="${topic}"] [data-col="rate"]`);
      return rate !== null && parseFloat(rate.textContent) > 0;
    }, step.topic, {timeout: WAIT_MS});
    return {rates: await rowCells(page, "throughput-table", "topic")};
  },
};

async function main() {
  const plan = JSON.parse(process.argv[2]);
  const browser = await chromium.launch({executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS});
  const results = [];
  const screenshots = [];
  try {
    const page = await browser.newPage({viewport: {width: 1280, height: 900}});
    const pageErrors = [];
    page.on("pageerror", error => pageErrors.push(String(error)));
    await page.goto(plan.url, {timeout: WAIT_MS});
    await page.waitForSelector('#view[data-state="ready"]', {timeout: WAIT_MS});
    for (const [index, step] of plan.steps.entries()) {
      const run = STEPS[step.do];
      if (!run) throw new Error(`unknown step ${step.do}`);
      let result;
      try {
        result = await run(page, step);
      } finally {
        const shot = path.join(plan.shots, `${String(index).padStart(2, "0")}-${step.do}.png`);
        await page.screenshot({path: shot, fullPage: true});
        screenshots.push(shot);
      }
      results.push({step: step.do, ...result, page_errors: pageErrors.splice(0)});
    }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify({results, screenshots}));
}

main().catch(error => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
