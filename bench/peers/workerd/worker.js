// The hello of Updraft's benchmark as a Cloudflare Workers ES module: every request gets {"hello":"world"}.
export default {
  async fetch() {
    return new Response('{"hello":"world"}', { headers: { "content-type": "application/json" } });
  },
};
