// The chat page at GET / in headless Chromium (puppeteer-core): a loading server and a gone
// one, the API key, streamed replies, stop (button and Escape) cancelling on the server,
// a full server, conversations kept over a reload, model text never becoming markup, the
// theme, and screenshots at desktop and phone width.
// usage: node webui.mjs NODE_MODULES BROWSER URL API_KEY LOADING_URL LOADING_FIFO OUT_DIR
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [modules, browserPath, url, apiKey, loadingUrl, fifo, outDir] = process.argv.slice(2);
const require = createRequire(path.join(modules, 'index.js'));
const puppeteer = require('puppeteer-core');
const auth = { Authorization: `Bearer ${apiKey}` };

let passed = 0, failed = 0;
function check(ok, what) {
  if (ok) passed++;
  else { failed++; console.log(`FAIL: ${what}`); }
}

// Waits for fn (run in the page) to be true; false after the timeout.
async function until(page, fn, what, timeout = 30000, ...args) {
  try {
    await page.waitForFunction(fn, { timeout, polling: 50 }, ...args);
    return true;
  } catch (e) {
    check(false, `${what} (${e.message.split('\n')[0]})`);
    return false;
  }
}

async function metrics() {
  const text = await (await fetch(`${url}/metrics`, { headers: auth })).text();
  const num = (re) => Number((re.exec(text) || [])[1]);
  return { aborted: num(/^meshlm:request_success_total\{finished_reason="abort"\} (\d+)/m),
    running: num(/^meshlm:num_requests_running (\d+)/m) };
}

// Waits until the server has counted `aborted` cancelled sequences and runs none.
async function serverAborted(aborted, what) {
  let m;
  for (let i = 0; i < 100; i++) {
    m = await metrics();
    if (m.aborted === aborted && m.running === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  check(m.aborted === aborted && m.running === 0, `${what}: /metrics says ${m.aborted} aborted (want ${aborted}), ` +
    `${m.running} running`);
}

async function setField(page, sel, value) {
  await page.$eval(sel, (e, v) => {
    e.value = v;
    e.dispatchEvent(new Event('change'));
  }, value);
}

const idle = () => !document.getElementById('send').hidden && document.getElementById('stop').hidden;
const lastReply = () => {
  const all = document.querySelectorAll('#messages .msg.assistant');
  return all.length ? all[all.length - 1] : null;
};

async function sendAndWait(page, text) {
  await page.type('#input', text);
  await page.keyboard.press('Enter');
  await until(page, `(${idle})() && document.querySelectorAll('#messages .msg').length > 0`, `reply to '${text}'`);
}

const browser = await puppeteer.launch({
  executablePath: browserPath, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  const pageErrors = [], cspErrors = [], bodies = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text()); });
  page.on('request', (r) => { if (r.url().endsWith('/v1/chat/completions')) bodies.push(r.postData()); });

  // ---- a server still loading its model, then gone
  await page.goto(loadingUrl);
  await until(page, () => document.getElementById('status').className === 'loading' &&
    /loading the model/.test(document.getElementById('banner').textContent), 'the loading state');
  try {
    fs.writeFileSync(fifo, 'not a model\n');
  } catch (e) {
    // The server may give up on the pipe before reading it (EPIPE): it is gone either way.
    if (e.code !== 'EPIPE') throw e;
  }
  await until(page, () => document.getElementById('status').className === 'gone' &&
    /Cannot reach the server/.test(document.getElementById('banner').textContent), 'the gone state');

  // ---- the API key: asked for, then kept
  await page.goto(url);
  await until(page, () => !document.getElementById('key-form').hidden, 'the page did not ask for the API key');
  await page.type('#key-input', apiKey);
  await page.keyboard.press('Enter');
  await until(page, () => document.getElementById('model-name').textContent === 'webui-model' &&
    /4096/.test(document.getElementById('model-ctx').textContent) &&
    document.getElementById('status').className === 'ready', 'model name and context size');
  check(await page.evaluate(() => localStorage.getItem('meshlm.key')) === JSON.stringify(apiKey), 'the key is not kept');

  // ---- settings, Shift+Enter, a streamed reply with its statistics
  await page.click('#settings-toggle');
  await setField(page, '#system', 'You are terse.');
  await setField(page, '#temperature', '0.5');
  await setField(page, '#top-p', '0.9');
  await setField(page, '#max-tokens', '64');
  await page.type('#input', 'Hello there');
  await page.keyboard.down('Shift');
  await page.keyboard.press('Enter');
  await page.keyboard.up('Shift');
  await page.type('#input', 'second line');
  check(await page.$eval('#input', (e) => e.value) === 'Hello there\nsecond line', 'Shift+Enter is no new line');
  check(await page.$$eval('#messages .msg', (e) => e.length) === 0, 'Shift+Enter sent the message');
  await page.evaluate(() => {
    window.lengths = [];
    new MutationObserver(() => {
      const all = document.querySelectorAll('#messages .msg.assistant .body');
      if (all.length) window.lengths.push(all[all.length - 1].textContent.length);
    }).observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true });
  });
  await page.keyboard.press('Enter');
  await until(page, idle, 'the first reply did not finish');
  const grew = await page.evaluate(() => new Set(window.lengths.filter((n) => n > 0)).size);
  check(grew >= 2, `the reply was not shown as it streamed (${grew} distinct lengths)`);
  const meta = await page.$eval('#messages .msg.assistant .meta', (e) => e.textContent);
  check(/^64 tokens · [\d.]+ tokens\/s · first token \d+ ms/.test(meta), `statistics: '${meta}'`);
  const sent = JSON.parse(bodies[0] || '{}');
  check(sent.stream === true && sent.stream_options?.include_usage === true && sent.temperature === 0.5 &&
    sent.top_p === 0.9 && sent.max_tokens === 64 && sent.model === 'webui-model' &&
    sent.messages?.[0]?.role === 'system' && sent.messages[0].content === 'You are terse.' &&
    sent.messages[1]?.content === 'Hello there\nsecond line', `request: ${bodies[0]}`);
  const firstReply = await page.$eval('#messages .msg.assistant .body', (e) => e.textContent);
  check(firstReply.length > 0, 'the first reply is empty');

  // ---- stop, by the button and by Escape: the server cancels the sequence
  await setField(page, '#max-tokens', '3000');
  let { aborted } = await metrics();
  for (const how of ['button', 'Escape']) {
    await page.type('#input', `A long story, stopped by ${how}`);
    await page.keyboard.press('Enter');
    await until(page, `(${lastReply})().querySelector('.body').textContent.length > 20`, `no long reply (${how})`);
    if (how === 'button') await page.click('#stop');
    else await page.keyboard.press('Escape');
    await until(page, idle, `stop by ${how} did not end the reply`);
    const m = await page.evaluate(`(${lastReply})().querySelector('.meta').textContent`);
    check(/^~\d+ tokens · .*stopped$/.test(m), `a reply stopped by ${how} does not say so: '${m}'`);
    aborted++;
    await serverAborted(aborted, `stop by ${how}`);
  }

  // ---- a full server (--parallel 1 --max-queue 0): 503 with Retry-After, said as such
  const hog = new AbortController();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, signal: hog.signal,
    body: JSON.stringify({ messages: [{ role: 'user', content: 'hog' }], max_tokens: 3000, stream: true }),
  });
  const reader = res.body.getReader();
  await reader.read();
  await page.type('#input', 'Are you busy?');
  await page.keyboard.press('Enter');
  await until(page, () => /server is full.*try again in 1 s/.test(document.getElementById('banner').textContent) &&
    !document.getElementById('banner').hidden, 'the full state');
  await until(page, idle, 'the refused request did not end');
  hog.abort();
  await reader.read().catch(() => null);
  await serverAborted(aborted + 1, 'the hogging client left');

  // ---- several conversations, kept over a reload
  await setField(page, '#max-tokens', '16');
  await page.click('#new-chat');
  await sendAndWait(page, 'Second conversation');
  check(await page.$$eval('#chats li', (e) => e.length) === 2, 'two conversations in the list');
  await page.reload();
  await until(page, () => document.getElementById('model-name').textContent === 'webui-model', 'model after reload');
  check(await page.$$eval('#chats li', (e) => e.length) === 2, 'the conversations were not kept');
  check(await page.$eval('#messages .msg.user .body', (e) => e.textContent) === 'Second conversation',
    'the current conversation was not kept');
  await page.click('#chats li:nth-child(2) .title');
  const kept = await page.$$eval('#messages .msg', (e) => e.map((m) => m.querySelector('.body').textContent));
  check(kept.length === 8 && kept[0] === 'Hello there\nsecond line' && kept[1] === firstReply,
    `the first conversation after reload: ${kept.length} messages, '${kept[0]}'`);
  check(await page.$eval('#max-tokens', (e) => e.value) === '16', 'the settings were not kept');

  // ---- model text is text: a reply with markup, streamed in pieces, and again after reload
  const evil = 'Look: <script>window.pwned=1</script> and <img src=x onerror="window.pwned=2"> end.\n\n' +
    '```html\n<img src=y onerror="window.pwned=3">\n```\n\n' +
    '[click](javascript:window.pwned=4) [ok](https://example.com/a) **bold** `<b>x</b>`';
  await page.setRequestInterception(true);
  const fake = (r) => {
    if (!r.url().endsWith('/v1/chat/completions')) return r.continue();
    const chunk = (content) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;
    const body = [evil.slice(0, 20), evil.slice(20, 45), evil.slice(45)].map(chunk).join('') +
      `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`;
    return r.respond({ status: 200, contentType: 'text/event-stream', body });
  };
  page.on('request', fake);
  await sendAndWait(page, 'Show me some markup');
  page.off('request', fake);
  await page.setRequestInterception(false);
  const inspect = () => {
    const all = document.querySelectorAll('#messages .msg.assistant .body');
    const b = all[all.length - 1];
    return { pwned: window.pwned, elements: b.querySelectorAll('script, img, b, iframe').length,
      text: b.textContent, links: [...b.querySelectorAll('a')].map((a) => a.href),
      code: b.querySelector('.codeblock pre code')?.textContent, strong: b.querySelectorAll('strong').length };
  };
  for (const when of ['streamed', 'after reload']) {
    if (when !== 'streamed') {
      await page.reload();
      await until(page, () => document.querySelectorAll('#messages .msg').length > 0, 'messages after reload');
    }
    const r = await page.evaluate(inspect);
    check(r.pwned === undefined && r.elements === 0, `${when}: model text ran or became elements: ${JSON.stringify(r)}`);
    check(r.text.includes('<script>window.pwned=1</script>') && r.text.includes('<img src=x onerror="window.pwned=2">') &&
      r.text.includes('<b>x</b>'), `${when}: the markup is not shown as text: ${r.text}`);
    check(r.code === '<img src=y onerror="window.pwned=3">', `${when}: code block: ${r.code}`);
    check(r.links.length === 1 && r.links[0] === 'https://example.com/a' && r.strong === 1,
      `${when}: links ${JSON.stringify(r.links)}, ${r.strong} strong`);
  }

  // ---- a code block's copy button
  await browser.defaultBrowserContext().overridePermissions(url, ['clipboard-read', 'clipboard-write',
    'clipboard-sanitized-write']);
  await page.click('#messages .msg.assistant:last-child .codeblock .copy');
  await until(page, () => document.querySelector('#messages .msg.assistant:last-child .codeblock .copy')
    .textContent === 'Copied', 'the copy button');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  check(copied === '<img src=y onerror="window.pwned=3">', `copied '${copied}'`);

  // ---- the Markdown renderer's blocks
  const md = await page.evaluate(() => {
    const box = document.createElement('div');
    box.appendChild(window.meshlmChat.renderMarkdown(
      '# Title\n\nSome *it* and __bold__ and ~~gone~~.\n\n- a\n- b\n  - nested\n\n3. x\n4. y\n\n> quoted\n\n---\n' +
      '\n## C# and F#\n\n```\nopen fence'));
    const q = (s) => box.querySelectorAll(s).length;
    return [q('h1'), q('em'), q('strong'), q('del'), q('ul > li'), q('ul ul > li'), q('ol > li'),
      box.querySelector('ol')?.start, q('blockquote'), q('hr'), box.querySelector('h2')?.textContent,
      box.querySelector('.codeblock code')?.textContent];
  });
  check(JSON.stringify(md) === JSON.stringify([1, 1, 1, 1, 3, 1, 2, 3, 1, 1, 'C# and F#', 'open fence']),
    `markdown: ${md}`);
  // Random Markdown-ish text: no exception, only the renderer's own elements, http(s) links only.
  const odd = await page.evaluate(() => {
    const parts = ['*', '**', '_', '`', '```', '[', '](', ')', '# ', '- ', '1. ', '> ', '~~', '\n', '\n\n', '  ', 'a',
      'http://x.y/', 'javascript:x', '<img src=x onerror=alert(1)>', '&amp;', '\\'];
    const allowed = /^(P|BR|STRONG|EM|DEL|CODE|PRE|A|H[1-6]|UL|OL|LI|BLOCKQUOTE|HR|DIV|SPAN|BUTTON)$/;
    let seed = 7;
    const rand = (n) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    for (let k = 0; k < 3000; k++) {
      let text = '';
      for (let n = rand(60); n > 0; n--) text += parts[rand(parts.length)];
      try {
        const box = document.createElement('div');
        box.appendChild(window.meshlmChat.renderMarkdown(text));
        for (const e of box.querySelectorAll('*'))
          if (!allowed.test(e.nodeName) || (e.nodeName === 'A' && !/^https?:/.test(e.href))) return `${e.outerHTML} from ${JSON.stringify(text)}`;
      } catch (e) {
        return `${e.message} on ${JSON.stringify(text)}`;
      }
    }
    return '';
  });
  check(odd === '', `random Markdown: ${odd}`);

  // ---- the theme toggle: automatic, light, dark
  const bg = () => getComputedStyle(document.body).backgroundColor;
  await page.click('#theme');
  await page.click('#theme');
  check(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark' &&
    await page.evaluate(bg) === 'rgb(22, 24, 28)', 'the dark theme toggle');
  await page.click('#theme');
  check(await page.evaluate(bg) === 'rgb(255, 255, 255)', 'back to the automatic (light) theme');

  // ---- screenshots: desktop, and a phone in the system's dark theme
  fs.mkdirSync(outDir, { recursive: true });
  const shots = [path.join(outDir, 'webui-desktop-1280x800.png'), path.join(outDir, 'webui-phone-390x844-dark.png')];
  await page.mouse.move(640, 790);
  await page.screenshot({ path: shots[0] });
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
  await page.setViewport({ width: 390, height: 844 });
  check(await page.evaluate(bg) === 'rgb(22, 24, 28)', 'prefers-color-scheme: dark');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 390, `the page is ${width} px wide at 390 px`);
  await until(page, () => document.getElementById('side').getBoundingClientRect().right <= 0 &&
    getComputedStyle(document.getElementById('menu')).display !== 'none', 'the phone layout hides the list', 5000);
  await page.screenshot({ path: shots[1] });
  for (const s of shots) console.log(`screenshot: ${s}`);

  check(pageErrors.length === 0, `errors in the page: ${pageErrors.join('; ')}`);
  check(cspErrors.length === 0, `Content-Security-Policy violations: ${cspErrors.join('; ')}`);
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
