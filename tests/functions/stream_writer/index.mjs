// A streaming function for tests/e2e/test_hardening_runtime_api.py: writes `chunks` chunks of
// `kib` KiB, `gap_ms` apart, whatever its reader does.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const chunk = Buffer.alloc((event.kib ?? 1) * 1024, "x");
  for (let i = 0; i < (event.chunks ?? 1); i++) {
    responseStream.write(chunk);
    if (event.gap_ms) await sleep(event.gap_ms);
  }
  responseStream.end();
});
