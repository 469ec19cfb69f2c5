// End-to-end: the demo in a real browser. Starts `starrocks-gateway demo` (the binary in
// $GATEWAY_BIN) on a free port, drives Debian's chromium with playwright-core, and fails on
// the first step that does not hold. Screenshots and the demo's log go to target/e2e/.
//
//   scripts/e2e      (installs chromium and the npm packages, builds, runs this)
import { spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const BIN = process.env.GATEWAY_BIN || 'target/debug/starrocks-gateway';
const SHOTS = 'target/e2e';
mkdirSync(SHOTS, { recursive: true });

function startDemo() {
  const log = openSync(`${SHOTS}/demo.log`, 'w');
  const demo = spawn(BIN, ['demo', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', log] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the demo did not start within 60 s')), 60000);
    createInterface({ input: demo.stdout }).on('line', (line) => {
      const match = line.match(/^\s+gateway\s+(http:\/\/\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve({ demo, url: match[1] });
      }
    });
    demo.on('exit', (code) => reject(new Error(`the demo exited (${code})`)));
  });
}

const steps = [];
async function step(name, run) {
  process.stdout.write(`- ${name} … `);
  await run();
  steps.push(name);
  process.stdout.write('ok\n');
}

const { demo, url } = await startDemo();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
let failed = false;
try {
  const context = await browser.newContext();
  context.setDefaultTimeout(15000);
  const page = await context.newPage();

  await step('the portal offers sign-in', async () => {
    await page.goto(url + '/');
    await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    await page.screenshot({ path: `${SHOTS}/01-signed-out.png`, fullPage: true });
  });

  await step('signing in through the identity provider as alice', async () => {
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('button', { name: /Continue as alice/ }).click();
    await page.getByText(/Signed in as alice, until/).waitFor();
    await page.screenshot({ path: `${SHOTS}/02-signed-in.png`, fullPage: true });
  });

  await step('the gateway knows who signed in', async () => {
    await page.locator('#me-details').getByText('alice').first().waitFor();
  });

  await step('signing out forgets the token', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('You are signed out.').waitFor();
    const kept = await page.evaluate(() => sessionStorage.getItem('srgw.token'));
    if (kept) throw new Error('the token is still in session storage');
  });

  await step('Swagger UI: Authorize signs in, and Try it out on GET /v1/me answers 200', async () => {
    const apiContext = await browser.newContext();
    apiContext.setDefaultTimeout(15000);
    const swagger = await apiContext.newPage();
    await swagger.goto(url + '/swagger-ui/');
    await swagger.getByRole('button', { name: 'Authorize' }).first().click();
    const oidc = swagger.locator('.auth-container').filter({ hasText: 'oidc' });
    const popupOpened = apiContext.waitForEvent('page');
    await oidc.locator('button.authorize').click();
    const popup = await popupOpened;
    await popup.getByRole('button', { name: /Continue as alice/ }).click();
    // Swagger UI labels its buttons for screen readers ("Remove authorization"): match the text.
    await oidc.locator('button', { hasText: 'Logout' }).waitFor();
    await swagger.locator('.modal-ux button.close-modal').click();
    const me = swagger.locator('#operations-instances-me');
    await me.locator('.opblock-summary').click();
    await me.getByRole('button', { name: 'Try it out' }).click();
    await me.getByRole('button', { name: 'Execute' }).click();
    await me.locator('.live-responses-table .response .response-col_status').filter({ hasText: '200' }).waitFor();
    await swagger.screenshot({ path: `${SHOTS}/03-swagger-me.png`, fullPage: true });
  });
} catch (error) {
  failed = true;
  process.stdout.write(`FAILED\n${error.stack || error}\n`);
} finally {
  await browser.close();
  demo.kill('SIGINT');
}
process.stdout.write(`${steps.length} steps passed${failed ? ', then one failed' : ''}\n`);
process.exit(failed ? 1 : 0);
