// Roo Code 3.52's LM Studio model listing (src/api/providers/fetchers/lmstudio.ts), with the
// real @lmstudio/sdk: the calls Roo makes, in its order, against BASE_URL (http://host:port).
// Prints one JSON object: what each call returned, or the error it threw.
// Env: BASE_URL; PASSKEY (optional: the SDK's clientPasskey); MODEL (optional: also run
// client.llm.model(MODEL), Roo's forceFullModelDetailsLoad).
import { LMStudioClient } from "@lmstudio/sdk";

const timer = setTimeout(() => {
  console.log(JSON.stringify({ timeout: true }));
  process.exit(3);
}, Number(process.env.TIMEOUT_MS || 20000));

const baseUrl = process.env.BASE_URL;
const lmsUrl = baseUrl.replace(/^http:\/\//, "ws://").replace(/^https:\/\//, "wss://");
const opts = { baseUrl: lmsUrl, logger: { info() {}, warn() {}, error() {}, debug() {} } };
if (process.env.PASSKEY) opts.clientPasskey = process.env.PASSKEY;
const out = {};

const res = await fetch(`${baseUrl}/v1/models`); // Roo tests the connection first
out.v1Status = res.status;
const client = new LMStudioClient(opts);
try {
  out.downloaded = await client.system.listDownloadedModels("llm");
} catch (error) {
  out.downloadedError = String(error?.message ?? error);
}
try {
  const loaded = await client.llm.listLoaded();
  out.loaded = await Promise.all(loaded.map((m) => m.getModelInfo()));
} catch (error) {
  out.loadedError = String(error?.message ?? error);
}
if (process.env.MODEL) {
  try {
    const model = await client.llm.model(process.env.MODEL);
    out.model = await model.getModelInfo();
  } catch (error) {
    out.modelError = String(error?.message ?? error);
  }
}
clearTimeout(timer);
console.log(JSON.stringify(out));
process.exit(0);
