// A streaming function for tests/e2e/test_hardening_runtime_api.py: writes `chunks` chunks of
// `kib` KiB, `gap_ms` apart, whatever its reader does. The numbers come from the event or, through
// a Function URL, from the query string.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const p = { ...event, ...(event.queryStringParameters ?? {}) };
  const chunk = Buffer.alloc(Number(p.kib ?? 1) * 1024, "x");
  for (let i = 0; i < Number(p.chunks ?? 1); i++) {
    responseStream.write(chunk);
    if (p.gap_ms) await sleep(Number(p.gap_ms));
  }
  responseStream.end();
});
