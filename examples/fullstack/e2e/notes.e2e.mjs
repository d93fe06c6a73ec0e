// End-to-end test of the notes board in real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core): create, list and delete notes through the UI, check that they are
// kept by the server (a reload shows the same board), and that the server's validation answer is
// shown to the user. Run by e2e/run.sh, which builds everything and starts `berth up`:
//
//   BASE_URL=http://127.0.0.1:8080 SCREENSHOT=target/fullstack-e2e/notes.png node e2e/notes.e2e.mjs
//
// Prints one PASS line per check; exits non-zero at the first failure.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

// playwright-core is a dependency of web/ (pinned in web/package-lock.json).
const require = createRequire(new URL("../web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const BASE_URL = process.env.BASE_URL ?? "http://127.0.0.1:8080";
const SCREENSHOT = process.env.SCREENSHOT ?? "notes.png";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TIMEOUT = 10_000;

let passed = 0;
function pass(what) {
  passed += 1;
  console.log(`PASS ${what}`);
}
function check(condition, what, detail) {
  if (!condition) throw new Error(`${what}${detail === undefined ? "" : `: ${detail}`}`);
  pass(what);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  // The network here is closed: without the background-networking flags Chromium keeps
  // trying to reach Google's services and floods the log with refused connections.
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const pageErrors = [];
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (e) => pageErrors.push(`uncaught: ${e.message}`));
  // A failed request is logged by Chromium as a console error too: it is checked below by its
  // answer instead (only the blank note's 422 is expected).
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(`console.error: ${m.text()}`);
  });
  const failedAnswers = [];
  page.on("response", (r) => {
    if (r.status() >= 400) failedAnswers.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`);
  });

  const notes = page.getByTestId("notes");
  const note = (text) => page.getByTestId("note").filter({ hasText: text });
  const texts = () => page.getByTestId("note-body").allTextContents();
  async function load() {
    const res = await page.goto(BASE_URL, { waitUntil: "domcontentloaded" });
    if (res === null || !res.ok()) throw new Error(`GET ${BASE_URL} answered ${res?.status()}: is [[static]] serving web/dist?`);
    await page.locator('[data-testid="notes"][data-loaded="true"]').waitFor({ state: "attached" });
  }
  /** Submits the form and returns the POST /api/notes answer the page got. */
  async function submit(text, color) {
    await page.getByTestId("note-text").fill(text);
    if (color !== undefined) await page.getByTestId("note-color").selectOption(color);
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/api/notes") && r.request().method() === "POST"),
      page.getByTestId("note-add").click(),
    ]);
    return res;
  }

  await load();
  check(await page.title() === "Notes · Berth", "the page is served by berth's [[static]] mount", await page.title());
  check((await notes.getByTestId("note").count()) === 0, "a fresh data dir shows an empty board");
  check((await page.getByTestId("status").textContent()).includes("No notes yet"), "the empty board says so");

  // Create two notes through the form.
  const first = "Buy oat milk and coffee beans";
  const second = "Call the plumber about the kitchen tap, Tuesday 9:00";
  let res = await submit(first, "blue");
  check(res.status() === 201, "the first note is created (201)", res.status());
  await note(first).waitFor();
  res = await submit(second, "pink");
  check(res.status() === 201, "the second note is created (201)", res.status());
  await note(second).waitFor();
  check(
    JSON.stringify(await texts()) === JSON.stringify([second, first]),
    "both notes are listed, newest first",
    JSON.stringify(await texts()),
  );
  check((await note(first).getAttribute("data-color")) === "blue", "the chosen color is kept");
  check((await page.getByTestId("note-text").inputValue()) === "", "the form is cleared after a note is added");

  // The server keeps them: a reload lists the same notes.
  await page.reload({ waitUntil: "domcontentloaded" });
  await page.locator('[data-testid="notes"][data-loaded="true"]').waitFor({ state: "attached" });
  check(
    JSON.stringify(await texts()) === JSON.stringify([second, first]),
    "after a reload both notes are still listed (persisted server-side)",
    JSON.stringify(await texts()),
  );

  // Delete one through its button.
  const [deleted] = await Promise.all([
    page.waitForResponse((r) => /\/api\/notes\/\d+$/.test(r.url()) && r.request().method() === "DELETE"),
    note(first).getByTestId("note-delete").click(),
  ]);
  check(deleted.status() === 204, "the delete button deletes the note (204)", deleted.status());
  await note(first).waitFor({ state: "detached" });
  check(JSON.stringify(await texts()) === JSON.stringify([second]), "the deleted note is gone from the list", JSON.stringify(await texts()));
  await load();
  check(JSON.stringify(await texts()) === JSON.stringify([second]), "after a reload the deleted note stays gone", JSON.stringify(await texts()));

  const third = "Water the plants";
  res = await submit(third, "green");
  check(res.status() === 201, "a third note is created (201)", res.status());
  await note(third).waitFor();

  // A blank note: nothing on the page stops it; the server answers 422 and the user sees why.
  check((await page.getByTestId("note-text").getAttribute("required")) === null, "the text area has no client-side `required`");
  check(await page.getByTestId("form-error").isHidden(), "no error is shown before a bad submission");
  res = await submit("   ", "yellow");
  const body = await res.json();
  check(res.status() === 422 && body.error === "validation", "the server refuses a blank note with 422 validation", JSON.stringify(body));
  const error = page.getByTestId("form-error");
  await error.waitFor({ state: "visible" });
  const fieldError = error.locator('[data-testid="field-error"][data-field="text"]');
  await fieldError.waitFor();
  const shown = (await fieldError.textContent()) ?? "";
  const serverMessage = body.fields.find((f) => f.path === "text")?.message;
  check(
    serverMessage !== undefined && shown === `text: ${serverMessage}`,
    "the server's field error is shown to the user",
    `shown ${JSON.stringify(shown)}, server said ${JSON.stringify(body.fields)}`,
  );
  check((await page.getByTestId("note-text").getAttribute("aria-invalid")) === "true", "the failing field is marked invalid");
  check((await notes.getByTestId("note").count()) === 2, "the refused note was not added", await notes.getByTestId("note").count());

  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  pass(`screenshot saved to ${SCREENSHOT}`);

  // Fixing the text clears the error.
  res = await submit("Renew the library card");
  check(res.status() === 201, "a corrected note is created (201)", res.status());
  await error.waitFor({ state: "hidden" });
  check((await page.getByTestId("note-text").getAttribute("aria-invalid")) === null, "the error is cleared once a note is saved");

  check(pageErrors.length === 0, "the page logged no errors", pageErrors.join("; "));
  check(
    JSON.stringify(failedAnswers) === JSON.stringify(["POST /api/notes 422"]),
    "the only failed request was the blank note's",
    failedAnswers.join("; "),
  );
} catch (e) {
  failed = true;
  console.log(`FAIL ${e instanceof Error ? e.message : String(e)}`);
  if (pageErrors.length > 0) console.log(`page errors: ${pageErrors.join("; ")}`);
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed ? 1 : 0} failed`);
process.exit(failed ? 1 : 0);
