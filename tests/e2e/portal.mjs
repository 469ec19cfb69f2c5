// End-to-end: the demo in a real browser. Starts `starrocks-gateway demo` (the binary in
// $GATEWAY_BIN) on a free port, drives Debian's chromium with playwright-core, and fails on
// the first step that does not hold. Screenshots and the demo's log go to target/e2e/.
//
//   scripts/e2e      (installs chromium and the npm packages, builds, runs this)
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

// No serious or critical accessibility violations on the page as it is now.
async function accessible(page, what) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => (await window.axe.run(document)).violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`));
  if (violations.length) throw new Error(`${what}: ${violations.join('; ')}`);
}

// Nothing wider than the viewport at 375 px.
async function fitsA375(page, what) {
  const size = page.viewportSize();
  await page.setViewportSize({ width: 375, height: 800 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.setViewportSize(size);
  if (width > 375) throw new Error(`${what}: the page is ${width} px wide at 375 px`);
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

  await step('the gateway knows who signed in, and the quota bars show the team\'s usage', async () => {
    await page.locator('#me-details').getByText('alice').first().waitFor();
    await page.locator('#quota').getByText('0 of 5 used').waitFor();
    await accessible(page, 'signed in');
    await fitsA375(page, 'signed in');
  });

  await step('a target in the second region shows its region, and its AZs replace the default region\'s', async () => {
    const target = page.getByLabel('Target', { exact: true });
    await target.locator('option', { hasText: 'analytics-east (cn-east-3)' }).waitFor({ state: 'attached' });
    await target.selectOption('analytics-east');
    const azs = () => page.locator('#az option').allTextContents();
    await page.waitForFunction(() => [...document.querySelectorAll('#az option')].map((o) => o.value).join() === 'cn-east-3a');
    if ((await azs()).join() !== 'cn-east-3a') throw new Error(`AZs in cn-east-3: ${await azs()}`);
    await target.selectOption('analytics-prod');
    await page.waitForFunction(() => [...document.querySelectorAll('#az option')].map((o) => o.value).join() === 'cn-north-4a,cn-north-4b');
  });

  await step('a label the policy does not allow is denied live, next to the labels', async () => {
    await page.getByLabel('Name', { exact: true }).fill('cube-e2e');
    await page.getByLabel('Target', { exact: true }).selectOption('analytics-prod');
    await page.getByLabel('Size', { exact: true }).selectOption('small');
    await page.getByRole('button', { name: 'Add label' }).click();
    await page.getByLabel('Label 1 key').fill('cost-center');
    await page.getByLabel('Label 1 value').fill('cc-1');
    await page.locator('#live').getByText('Denied').waitFor();
    await page.locator('#labels-msg').getByText(/cost-center/).waitFor();
    await page.screenshot({ path: `${SHOTS}/03-live-denied.png`, fullPage: true });
    await fitsA375(page, 'a live denial');
    await page.getByRole('button', { name: 'Remove label 1' }).click();
    await page.locator('#live').getByText('Allowed').waitFor();
  });

  await step('creating shows the generated password once, the quota moves, and the row its job\'s progress', async () => {
    await page.getByRole('button', { name: 'Create instance' }).click();
    await page.locator('#result .secret').getByText('Shown once').waitFor();
    await page.locator('#quota').getByText('1 of 5 used').waitFor();
    await page.locator('#list-details tr', { hasText: 'cube-e2e' }).locator('.job').getByText(/job Running/).waitFor();
    await page.screenshot({ path: `${SHOTS}/04-created.png`, fullPage: true });
    await accessible(page, 'after a create');
    await fitsA375(page, 'after a create');
  });

  await step('the instance becomes ready, and its details show the cloud\'s view', async () => {
    const row = page.locator('#list-details tr', { hasText: 'cube-e2e' });
    await row.getByText('ready', { exact: true }).waitFor({ timeout: 30000 });
    await row.getByRole('button', { name: 'Details of cube-e2e' }).click();
    const details = page.locator('#inst-panel');
    await details.getByRole('heading', { name: 'Instance cube-e2e' }).waitFor();
    await details.getByText('3306').waitFor();
    await details.getByText('Latest job').waitFor();
    await page.screenshot({ path: `${SHOTS}/05-details.png`, fullPage: true });
    await fitsA375(page, 'the details drawer');
    await details.getByRole('button', { name: 'Close details' }).click();
  });

  await step('the row shows when the lease ends, and extending it is one click', async () => {
    const row = page.locator('#list-details tr', { hasText: 'cube-e2e' });
    await row.getByRole('button', { name: 'Extend the lease of cube-e2e' }).click();
    await row.getByLabel('Days from now for cube-e2e').fill('60');
    await row.getByRole('button', { name: 'Extend lease' }).click();
    await page.locator('#result').getByText('Lease of cube-e2e extended').waitFor();
    await accessible(page, 'a lease extended');
  });

  await step('deleting asks for the name to be typed', async () => {
    const row = page.locator('#list-details tr', { hasText: 'cube-e2e' });
    await row.getByRole('button', { name: 'Delete cube-e2e' }).click();
    const confirm = row.getByRole('button', { name: 'Delete for good' });
    if (await confirm.isEnabled()) throw new Error('deleting is possible before the name is typed');
    await row.getByLabel('Type cube-e2e to delete it').fill('cube-e2e');
    await confirm.click();
    await page.locator('#result').getByText(/Deletion started|Instance deleted/).waitFor();
    await page.screenshot({ path: `${SHOTS}/06-deleting.png`, fullPage: true });
    await fitsA375(page, 'deleting');
  });

  await step('signing out forgets the token', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('You are signed out.').waitFor();
    const kept = await page.evaluate(() => sessionStorage.getItem('srgw.token'));
    if (kept) throw new Error('the token is still in session storage');
  });

  await step('signing in works from the keyboard alone, with the focus visible', async () => {
    const keysContext = await browser.newContext();
    keysContext.setDefaultTimeout(15000);
    const keys = await keysContext.newPage();
    await keys.goto(url + '/');
    await keys.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    // Tab until the focus is on `name`; its outline must show where the keyboard is.
    const tabTo = async (target, name) => {
      for (let i = 0; i < 40; i++) {
        await target.keyboard.press('Tab');
        const focused = await target.evaluate(() => ({
          text: document.activeElement && document.activeElement.textContent.trim(),
          outline: document.activeElement ? getComputedStyle(document.activeElement).outlineStyle : 'none',
        }));
        if (focused.text.startsWith(name)) {
          if (focused.outline === 'none') throw new Error(`no visible focus on ${name}`);
          return;
        }
      }
      throw new Error(`${name} cannot be reached with Tab`);
    };
    await tabTo(keys, 'Sign in');
    await keys.keyboard.press('Enter');
    await keys.getByRole('button', { name: /Continue as bob/ }).waitFor();
    await tabTo(keys, 'Continue as bob');
    await keys.keyboard.press('Enter');
    await keys.getByText(/Signed in as bob, until/).waitFor();
    await keysContext.close();
  });

  await step('an employee in two teams switches team in the header', async () => {
    const danaContext = await browser.newContext();
    danaContext.setDefaultTimeout(15000);
    const dana = await danaContext.newPage();
    await dana.goto(url + '/');
    await dana.getByRole('button', { name: 'Sign in', exact: true }).click();
    await dana.getByRole('button', { name: /Continue as dana/ }).click();
    await dana.locator('#quota').getByText('Quota of team analytics').waitFor();
    await dana.getByRole('banner').getByLabel('Team').selectOption('payments');
    await dana.locator('#quota').getByText('Quota of team payments').waitFor();
    await dana.locator('#cat-status').getByText(/Catalog for team payments/).waitFor();
    await fitsA375(dana, 'two teams');
    await danaContext.close();
  });

  await step('a platform admin filters the decision log and reconciles', async () => {
    const adminContext = await browser.newContext();
    adminContext.setDefaultTimeout(15000);
    const admin = await adminContext.newPage();
    await admin.goto(url + '/');
    await admin.getByRole('button', { name: 'Sign in', exact: true }).click();
    await admin.getByRole('button', { name: /Continue as erin/ }).click();
    const section = admin.locator('#admin');
    await section.getByRole('heading', { name: 'Platform admin' }).waitFor();
    await section.getByLabel('Subject').fill('alice');
    await section.getByLabel('Outcome').selectOption('denied');
    await section.getByRole('button', { name: 'Show decisions' }).click();
    const row = section.locator('#decisions tbody tr').first();
    await row.getByText('labels.keys').waitFor();
    const rows = await section.locator('#decisions tbody tr').allTextContents();
    if (!rows.every((r) => r.includes('alice') && r.includes('denied'))) throw new Error(`unfiltered rows: ${rows.join(' | ')}`);
    await section.getByRole('button', { name: 'Reconcile now' }).click();
    await section.getByText(/^Reconciled:/).waitFor();
    await admin.screenshot({ path: `${SHOTS}/07-admin.png`, fullPage: true });
    await accessible(admin, 'the admin panel');
    await fitsA375(admin, 'the admin panel');
    await adminContext.close();
  });

  await step('an exception: alice asks for a size by exception from a dry run, carol approves it, alice reads the password once', async () => {
    const signedIn = async (who) => {
      const context = await browser.newContext();
      context.setDefaultTimeout(15000);
      const page = await context.newPage();
      await page.goto(url + '/');
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByRole('button', { name: new RegExp(`Continue as ${who}`) }).click();
      await page.getByText(new RegExp(`Signed in as ${who}, until`)).waitFor();
      return { context, page };
    };
    const alice = await signedIn('alice');
    await alice.page.locator('#cat-status').getByText(/Catalog for team analytics/).waitFor();
    await alice.page.getByLabel('Name', { exact: true }).fill('load-e2e');
    await alice.page.getByLabel('Target', { exact: true }).selectOption('analytics-prod');
    await alice.page.getByLabel('Size', { exact: true }).selectOption('large');
    await alice.page.getByRole('button', { name: 'Dry run' }).click();
    const offer = alice.page.locator('#result form');
    await offer.getByRole('heading', { name: 'Ask for an exception' }).waitFor();
    await offer.getByLabel('Justification').fill('One week of load tests before the launch.');
    await offer.getByRole('button', { name: 'Ask for an exception' }).click();
    await offer.getByText(/Requested: pending until/).waitFor();
    const mine = alice.page.locator('#req-details tr', { hasText: 'load-e2e' });
    await mine.getByText('pending', { exact: true }).waitFor();
    await accessible(alice.page, 'an exception requested');

    const carol = await signedIn('carol');
    await carol.page.getByLabel('Only pending requests (the approval queue)').check();
    await carol.page.locator('#req-details tr', { hasText: 'load-e2e' })
      .getByRole('button', { name: 'Approve the request for load-e2e' }).click();
    await carol.page.locator('#req-action').getByText(/Approved: load-e2e is being created/).waitFor();
    await carol.page.screenshot({ path: `${SHOTS}/08-approved.png`, fullPage: true });
    await accessible(carol.page, 'the approval queue');
    await fitsA375(carol.page, 'the approval queue');
    await carol.context.close();

    await alice.page.getByRole('button', { name: 'Refresh requests' }).click();
    await mine.getByText('created', { exact: true }).waitFor();
    await mine.getByRole('button', { name: 'Show the root password of load-e2e' }).click();
    await alice.page.locator('#req-action .secret').getByText('Shown once').waitFor();
    await alice.page.getByRole('button', { name: 'Refresh list' }).click();
    await alice.page.locator('#list-details tr', { hasText: 'load-e2e' }).getByText('large').waitFor();
    await alice.context.close();
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
    await swagger.screenshot({ path: `${SHOTS}/08-swagger-me.png`, fullPage: true });
    await fitsA375(swagger, 'Swagger UI after Try it out');
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
