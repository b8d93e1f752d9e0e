// The official openai npm package against meshlm serve: chat and completions, streamed and
// not, and an error surfacing as the package's APIError with OpenAI's fields.
// usage: node openai.mjs NODE_MODULES BASE_URL MODEL
import { createRequire } from 'node:module';
import path from 'node:path';

const [modules, baseURL, model] = process.argv.slice(2);
const require = createRequire(path.join(modules, 'index.js'));
const OpenAI = require('openai').default ?? require('openai');
const client = new OpenAI({ baseURL, apiKey: 'sekrit', maxRetries: 0 });

let passed = 0, failed = 0;
function check(ok, what) {
  if (ok) passed++;
  else { failed++; console.log(`FAIL: ${what}`); }
}

const messages = [{ role: 'user', content: 'Hello' }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
check(chat.object === 'chat.completion' && chat.choices[0].message.role === 'assistant', `chat: ${JSON.stringify(chat)}`);
check(chat.usage.total_tokens === chat.usage.prompt_tokens + chat.usage.completion_tokens, 'chat usage');

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let text = '', finish = null, usage = null, role = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    role ??= c.delta.role;
    text += c.delta.content ?? '';
    finish = c.finish_reason ?? finish;
  }
}
check(text === chat.choices[0].message.content, `streamed chat '${text}' vs '${chat.choices[0].message.content}'`);
check(role === 'assistant' && finish === chat.choices[0].finish_reason, `streamed chat role ${role}, finish ${finish}`);
check(usage && usage.total_tokens === chat.usage.total_tokens, `streamed usage ${JSON.stringify(usage)}`);

const comp = await client.completions.create({ model, prompt: 'Hello world', max_tokens: 12, temperature: 0 });
check(comp.object === 'text_completion' && typeof comp.choices[0].text === 'string', `completion: ${JSON.stringify(comp)}`);
const cstream = await client.completions.create({ model, prompt: 'Hello world', max_tokens: 12, temperature: 0, stream: true });
let ctext = '';
for await (const chunk of cstream) for (const c of chunk.choices) ctext += c.text;
check(ctext === comp.choices[0].text, `streamed completion '${ctext}' vs '${comp.choices[0].text}'`);

const models = await client.models.list();
check(models.data.some((m) => m.id === model), `models: ${JSON.stringify(models.data)}`);

try {
  await client.chat.completions.create({ model, messages, logprobs: true });
  check(false, 'logprobs: true was accepted');
} catch (e) {
  check(e instanceof OpenAI.APIError && e.status === 400 && /logprobs/.test(e.message) && e.param === 'logprobs',
    `logprobs error: ${e}`);
}
try {
  await client.chat.completions.create({ model: 'no-such-model', messages });
  check(false, 'an unknown model was accepted');
} catch (e) {
  check(e instanceof OpenAI.NotFoundError, `unknown model: ${e}`);
}
try {
  await new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 }).models.list();
  check(false, 'a wrong key was accepted');
} catch (e) {
  check(e instanceof OpenAI.AuthenticationError, `wrong key: ${e}`);
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
