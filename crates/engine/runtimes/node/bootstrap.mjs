// Updraft's Node.js runtime client.
//
// Speaks the Lambda Runtime API (2018-06-01) on AWS_LAMBDA_RUNTIME_API: loads the handler
// named by _HANDLER from LAMBDA_TASK_ROOT (CommonJS or ES module), then loops fetching the
// next event, calling the handler and posting its result or error. Handler resolution,
// the callback/promise programming model, the context object, error bodies and log lines
// follow Lambda's own Node.js runtime so that functions behave the same here as there.
//
// Node's standard library only: this file is copied to /var/runtime and started as
// `node /var/runtime/bootstrap.mjs`.

import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import util from 'node:util';
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);

const API_PREFIX = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
const ERROR_BODY_TRAILER = 'Lambda-Runtime-Function-Error-Body';

// The same global slot Lambda's runtime uses, so libraries that read it keep working.
const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');
const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

function runtimeError(name) {
  const cls = class extends Error {};
  cls.prototype.name = `Runtime.${name}`;
  return cls;
}

const ImportModuleError = runtimeError('ImportModuleError');
const HandlerNotFound = runtimeError('HandlerNotFound');
const MalformedHandlerName = runtimeError('MalformedHandlerName');
const UserCodeSyntaxError = runtimeError('UserCodeSyntaxError');
const MalformedStreamingHandler = runtimeError('MalformedStreamingHandler');
const InvalidStreamingOperation = runtimeError('InvalidStreamingOperation');
const NodeJsExit = runtimeError('NodeJsExit');

class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
UnhandledPromiseRejection.prototype.name = 'Runtime.UnhandledPromiseRejection';

function isErrorLike(e) {
  return (
    e != null &&
    typeof e.name === 'string' &&
    typeof e.message === 'string' &&
    typeof e.stack === 'string'
  );
}

/** The body posted to /error and /init/error: Lambda's Node shape, with `trace`. */
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: typeof error.stack === 'string' ? error.stack.split('\n') : [],
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

/** `\t{json}` with the error's name, message, own properties and stack lines. */
function formatErrorForLog(err) {
  const replacer = (_key, value) => {
    if (!(value instanceof Error)) return value;
    const shaped = Object.assign(
      { errorType: value.name, errorMessage: value.message, code: value.code },
      value,
    );
    if (typeof value.stack === 'string') shaped.stack = value.stack.split('\n');
    return shaped;
  };
  try {
    return '\t' + JSON.stringify(err, replacer);
  } catch (_) {
    return '\t' + JSON.stringify(toRapidResponse(err));
  }
}

function logError(label, err) {
  console.error(label, formatErrorForLog(intoError(err)));
}

// ---------------------------------------------------------------------------
// Logging: console.* become `<ISO time>\t<request id>\t<LEVEL>\t<message>` lines (JSON objects
// with `LogFormat: JSON`), below AWS_LAMBDA_LOG_LEVEL dropped
// ---------------------------------------------------------------------------

function patchConsole() {
  const levels = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];
  const wanted = (process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase();
  const minimum = Math.max(0, levels.indexOf(wanted));
  // `LogFormat: JSON`: one object per call, as Lambda's Node.js runtime writes them.
  const json = (process.env.AWS_LAMBDA_LOG_FORMAT || '').toUpperCase() === 'JSON';
  const jsonLine = (level, message, params) => {
    const record = {
      timestamp: new Date().toISOString(),
      level,
      requestId: globalThis[REQUEST_ID],
      message: util.format(message, ...params),
    };
    if (message instanceof Error && params.length === 0) {
      record.errorType = message.name;
      record.errorMessage = message.message;
      record.stackTrace = typeof message.stack === 'string' ? message.stack.split('\n') : [];
    }
    try {
      return JSON.stringify(record) + '\n';
    } catch (_) {
      return JSON.stringify({ ...record, message: String(record.message) }) + '\n';
    }
  };
  const write = (level) => (message, ...params) => {
    const line = json
      ? jsonLine(level, message, params)
      : `${new Date().toISOString()}\t${globalThis[REQUEST_ID]}\t${level}\t${util.format(
          message,
          ...params,
        )}\n`;
    // Synchronous for pipes and files on Linux, so a line is out before the
    // invocation's response is posted.
    process.stdout.write(line);
  };
  const nop = () => {};
  const logger = (level) => (levels.indexOf(level) >= minimum ? write(level) : nop);
  console.trace = logger('TRACE');
  console.debug = logger('DEBUG');
  console.info = logger('INFO');
  console.log = console.info;
  console.warn = logger('WARN');
  console.error = logger('ERROR');
  console.fatal = logger('FATAL');
}

// ---------------------------------------------------------------------------
// Runtime API client
// ---------------------------------------------------------------------------

const CRLF2 = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
const EMPTY = Buffer.alloc(0);
const JSON_TYPE = Object.freeze({ 'Content-Type': 'application/json' });

/**
 * One kept-alive HTTP/1.1 connection to the Runtime API for /next and the buffered
 * answers. Requests are written and answers parsed right here on a `net` socket: the
 * Runtime API's answers are small and simple, and node:http's general client (agent,
 * request and message objects, events) costs more than the rest of a warm invocation in
 * this process.
 *
 * Requests made in the same turn of the event loop go out in one write and their answers
 * are matched in order (HTTP/1.1 pipelining): posting a response and asking for the next
 * event is one `write(2)` and one wake-up of the platform instead of two round trips.
 *
 * The socket is unref'd while no request is in flight, so an idle connection never
 * holds the event loop open (callbackWaitsForEmptyEventLoop depends on that).
 */
class RuntimeConnection {
  /** `socketPath`, when given, is tried first; TCP takes over if it cannot be connected. */
  constructor(hostname, port, socketPath) {
    this.hostname = hostname;
    this.port = port;
    this.socketPath = socketPath;
    this.hostHeader = `Host: ${hostname}:${port}\r\n`;
    this.socket = null;
    this.buf = EMPTY;
    this.inflight = []; // written, answers pending, oldest first: { req, received, ... }
    this.queue = []; // not written yet
    this.flushQueued = false;
  }

  /** `body` is a string (sent as UTF-8) or undefined. */
  request(method, urlPath, headers, body) {
    return new Promise((resolve, reject) => {
      this.queue.push({ method, urlPath, headers, body, resolve, reject, retried: false });
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => {
          this.flushQueued = false;
          this.flush();
        });
      }
    });
  }

  connect() {
    const overUnix = this.socketPath !== null;
    const socket = overUnix
      ? net.connect({ path: this.socketPath })
      : net.connect({ host: this.hostname, port: this.port });
    // Small requests must not wait for the peer's delayed ACK (Nagle).
    if (!overUnix) socket.setNoDelay(true);
    let connected = false;
    socket.on('connect', () => {
      connected = true;
    });
    socket.on('data', (chunk) => {
      if (socket !== this.socket) return;
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      while (this.inflight.length > 0 && this.parse(this.inflight[0]));
      if (this.inflight.length === 0 && this.queue.length === 0 && this.socket) this.socket.unref();
    });
    const gone = (err) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.buf = EMPTY;
      if (overUnix && !connected) {
        // No Unix socket here after all: the same requests go over TCP, from now on.
        this.socketPath = null;
        this.resendInflight();
        return;
      }
      const lost = this.inflight;
      this.inflight = [];
      const resend = [];
      for (const cur of lost) {
        if (cur.atEnd) {
          // A body that runs to the end of the connection.
          cur.req.resolve({ status: cur.status, headers: cur.headers, body: cur.tail });
        } else if (!cur.received && !cur.req.retried) {
          // A kept-alive connection the server had closed: send once more on a new one.
          cur.req.retried = true;
          resend.push(cur.req);
        } else {
          cur.req.reject(err || new Error('Runtime API connection closed'));
        }
      }
      this.queue = resend.concat(this.queue);
      this.flush();
    };
    socket.on('error', (err) => gone(err));
    socket.on('close', () => gone(null));
    this.socket = socket;
    this.buf = EMPTY;
  }

  /** Sends the requests written to a connection that is gone again, ahead of the queued ones. */
  resendInflight() {
    this.queue = this.inflight.map((c) => c.req).concat(this.queue);
    this.inflight = [];
    this.flush();
  }

  /** Writes every queued request in one write. */
  flush() {
    if (this.queue.length === 0) return;
    if (!this.socket) this.connect();
    this.socket.ref();
    let out = '';
    for (const req of this.queue) {
      out += `${req.method} ${req.urlPath} HTTP/1.1\r\n${this.hostHeader}`;
      if (req.body !== undefined) out += `Content-Length: ${Buffer.byteLength(req.body)}\r\n`;
      for (const name in req.headers) out += `${name}: ${req.headers[name]}\r\n`;
      out += '\r\n';
      if (req.body !== undefined) out += req.body;
      this.inflight.push({ req, received: false });
    }
    this.queue = [];
    this.socket.write(out, 'utf8');
  }

  /** Completes `cur`, the oldest request in flight, if its whole answer is buffered. */
  parse(cur) {
    cur.received = true;
    if (cur.atEnd) {
      cur.tail = Buffer.concat([cur.tail, this.buf]);
      this.buf = EMPTY;
      return false;
    }
    const end = this.buf.indexOf(CRLF2);
    if (end < 0) return false;
    const head = this.buf.toString('latin1', 0, end);
    const firstEol = head.indexOf('\r\n');
    const status = parseInt(head.slice(head.indexOf(' ') + 1), 10);
    const headers = {};
    let pos = firstEol < 0 ? head.length : firstEol + 2;
    while (pos < head.length) {
      let eol = head.indexOf('\r\n', pos);
      if (eol < 0) eol = head.length;
      const colon = head.indexOf(':', pos);
      if (colon > pos && colon < eol) {
        headers[head.slice(pos, colon).trim().toLowerCase()] = head.slice(colon + 1, eol).trim();
      }
      pos = eol + 2;
    }
    let rest = this.buf.subarray(end + 4);
    let body;
    const te = headers['transfer-encoding'];
    if (te !== undefined && te.toLowerCase() === 'chunked') {
      const decoded = decodeChunked(rest);
      if (!decoded) return false;
      body = decoded.body;
      rest = rest.subarray(decoded.used);
    } else if (headers['content-length'] !== undefined) {
      const n = parseInt(headers['content-length'], 10);
      if (rest.length < n) return false;
      // Every chunk the socket hands over is a buffer of its own: the body can stay a view.
      body = rest.subarray(0, n);
      rest = rest.subarray(n);
    } else if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = EMPTY;
    } else {
      Object.assign(cur, { atEnd: true, status, headers, tail: Buffer.from(rest) });
      this.buf = EMPTY;
      return false;
    }
    this.buf = rest.length ? rest : EMPTY;
    this.inflight.shift();
    const connection = headers.connection;
    if (connection !== undefined && connection.toLowerCase() === 'close' && this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.destroy();
      // Whatever was pipelined behind this answer goes again on a new connection.
      this.resendInflight();
    }
    cur.req.resolve({ status, headers, body });
    return true;
  }
}

/** A whole chunked body at the start of `buf`, or null while it is incomplete. */
function decodeChunked(buf) {
  const parts = [];
  let pos = 0;
  for (;;) {
    const eol = buf.indexOf(CRLF, pos);
    if (eol < 0) return null;
    const size = parseInt(buf.toString('latin1', pos, eol).split(';')[0].trim(), 16);
    pos = eol + 2;
    if (size === 0) break;
    if (buf.length < pos + size + 2) return null;
    parts.push(buf.subarray(pos, pos + size));
    pos += size + 2;
  }
  // Trailers, up to the empty line.
  for (;;) {
    const eol = buf.indexOf(CRLF, pos);
    if (eol < 0) return null;
    const empty = eol === pos;
    pos = eol + 2;
    if (empty) break;
  }
  return { body: Buffer.concat(parts), used: pos };
}

/**
 * The Runtime API's Unix socket named by _UPDRAFT_RUNTIME_API_SOCKET, or null. `@name` is the
 * abstract socket `name` padded with NULs to the whole of sun_path, which is how libuv
 * addresses an abstract path. The same API as AWS_LAMBDA_RUNTIME_API without TCP/IP's work on
 * every message.
 */
function runtimeApiSocketPath() {
  const named = process.env._UPDRAFT_RUNTIME_API_SOCKET;
  if (!named) return null;
  return named.startsWith('@') ? `\0${named.slice(1)}` : named;
}

class RuntimeApi {
  constructor(address, socketPath) {
    const colon = address.lastIndexOf(':');
    this.hostname = colon > 0 ? address.slice(0, colon) : address;
    this.port = colon > 0 ? parseInt(address.slice(colon + 1), 10) : 80;
    this.conn = new RuntimeConnection(this.hostname, this.port, socketPath);
    // Streamed responses go through node:http (chunked bodies with trailers). Idle
    // kept-alive sockets are unref'd by the agent, so they never hold the event loop open.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  request(method, urlPath, headers, body) {
    return this.conn.request(method, urlPath, headers, body);
  }

  async next() {
    const res = await this.request('GET', `${API_PREFIX}/invocation/next`, {}, undefined);
    if (res.status !== 200) {
      throw new Error(`GET /runtime/invocation/next answered ${res.status}: ${res.body.toString()}`);
    }
    return res;
  }

  postResponse(id, bodyString) {
    return this.post(`${API_PREFIX}/invocation/${encodeURIComponent(id)}/response`, bodyString, JSON_TYPE);
  }

  postError(id, error) {
    const response = toRapidResponse(error);
    return this.post(`${API_PREFIX}/invocation/${encodeURIComponent(id)}/error`, JSON.stringify(response), {
      'Content-Type': 'application/json',
      [ERROR_TYPE_HEADER]: response.errorType,
    });
  }

  postInitError(error) {
    const response = toRapidResponse(error);
    return this.post(`${API_PREFIX}/init/error`, JSON.stringify(response), {
      'Content-Type': 'application/json',
      [ERROR_TYPE_HEADER]: response.errorType,
    });
  }

  async post(urlPath, bodyString, extraHeaders) {
    const res = await this.request('POST', urlPath, extraHeaders, bodyString);
    if (res.status >= 300) {
      // The platform refused what we sent (e.g. too large); it has recorded the
      // outcome itself, so say why and go on.
      process.stderr.write(`updraft runtime: POST ${urlPath} answered ${res.status}: ${res.body.toString()}\n`);
    }
  }

  /**
   * A Writable whose bytes go to /response as one chunked POST in Lambda's streaming
   * mode. Errors after the first byte are reported in the trailers, as Lambda does.
   */
  responseStream(id, highWaterMark) {
    let req = null;
    let contentType = 'application/octet-stream';
    let settle;
    const responseDone = new Promise((resolve, reject) => {
      settle = { resolve, reject };
    });
    const start = () => {
      if (req) return req;
      req = http.request({
        hostname: this.hostname,
        port: this.port,
        path: `${API_PREFIX}/invocation/${encodeURIComponent(id)}/response`,
        method: 'POST',
        agent: this.agent,
        headers: {
          'Content-Type': contentType,
          'Lambda-Runtime-Function-Response-Mode': 'streaming',
          'Transfer-Encoding': 'chunked',
          Trailer: `${ERROR_TYPE_HEADER}, ${ERROR_BODY_TRAILER}`,
        },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => settle.resolve(res.statusCode));
      });
      req.on('error', (e) => settle.reject(e));
      if (typeof stream._onBeforeFirstWrite === 'function') {
        const prelude = stream._onBeforeFirstWrite;
        stream._onBeforeFirstWrite = null;
        prelude((data) => req.write(data));
      }
      return req;
    };
    const stream = new Writable({
      highWaterMark,
      write(chunk, _encoding, callback) {
        start().write(chunk, callback);
      },
      final(callback) {
        start().end();
        callback();
      },
    });
    stream.setContentType = (value) => {
      if (req) throw new InvalidStreamingOperation('Cannot set content-type, too late.');
      contentType = value;
    };
    return {
      stream,
      responseDone,
      started: () => req !== null,
      /** Ends a started stream with the error in its trailers. */
      failStarted: (error) => {
        if (req.writableEnded) return;
        const response = toRapidResponse(error);
        req.addTrailers({
          [ERROR_TYPE_HEADER]: response.errorType,
          [ERROR_BODY_TRAILER]: Buffer.from(JSON.stringify(response)).toString('base64'),
        });
        req.end();
      },
    };
  }
}

// ---------------------------------------------------------------------------
// Handler loading (as Lambda's Node runtime resolves `_HANDLER`)
// ---------------------------------------------------------------------------

/** Whether the nearest package.json above `folder` says `"type": "module"`. */
function hasTypeModule(folder) {
  if (folder.endsWith('/node_modules')) return false;
  const pj = path.join(folder, 'package.json');
  if (fs.existsSync(pj)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(pj, 'utf8'));
      return Boolean(pkg) && pkg.type === 'module';
    } catch (e) {
      console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
      return false;
    }
  }
  const parent = path.dirname(folder);
  return parent === folder ? false : hasTypeModule(parent);
}

function requireIfExists(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function importIfExists(file) {
  return fs.existsSync(file) ? await import(pathToFileURL(file).href) : undefined;
}

/**
 * Loads `<appRoot>/<moduleRoot>/<module>` trying, in Lambda's order: the exact file,
 * `.js` via require (unless package.json says module), `.js` via import (if it does),
 * `.mjs`, `.cjs`; then Node's own resolution (node_modules) from the app root.
 */
async function loadModule(appRoot, moduleRoot, module) {
  const base = path.resolve(appRoot, moduleRoot, module);
  const extensionless = requireIfExists(base);
  if (extensionless) return extensionless;

  const esm = hasTypeModule(path.dirname(base));
  if (!esm) {
    const cjs = requireIfExists(base + '.js');
    if (cjs) return cjs;
  }
  const loaded =
    (esm && (await importIfExists(base + '.js'))) ||
    (await importIfExists(base + '.mjs')) ||
    requireIfExists(base + '.cjs');
  if (loaded) return loaded;

  return require(require.resolve(module, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const slash = fullHandler.lastIndexOf('/');
  const moduleRoot = fullHandler.slice(0, slash + 1);
  const match = fullHandler.slice(slash + 1).match(/^([^.]*)\.(.*)$/);
  if (!match || match[1] === '') throw new MalformedHandlerName('Bad handler');
  const [, module, handlerPath] = match;

  let app;
  try {
    app = await loadModule(appRoot, moduleRoot, module);
  } catch (e) {
    if (e instanceof SyntaxError) {
      const err = new UserCodeSyntaxError(String(e));
      // The original stack names the file and line that failed to parse.
      err.stack = e.stack;
      throw err;
    }
    if (e && e.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(String(e));
    throw e;
  }

  const fn = handlerPath.split('.').reduce((obj, key) => obj && obj[key], app);
  if (!fn) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${fullHandler} is not a function`);
  return fn;
}

function installAwsLambdaGlobal() {
  const off = process.env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA;
  if (off === '1' || off === 'true') return;

  // Writes the HTTP-integration prelude (JSON metadata and 8 NUL bytes) that
  // Function URLs read before the body.
  class HttpResponseStream {
    static from(underlying, prelude) {
      underlying.setContentType('application/vnd.awslambda.http-integration-response');
      const metadata = JSON.stringify(prelude);
      underlying._onBeforeFirstWrite = (write) => {
        write(metadata);
        write(new Uint8Array(8));
      };
      return underlying;
    }
  }
  globalThis.awslambda = {
    streamifyResponse(handler, options) {
      handler[HANDLER_STREAMING] = STREAM_RESPONSE;
      if (typeof options?.highWaterMark === 'number') {
        handler[HANDLER_HIGHWATERMARK] = parseInt(options.highWaterMark, 10);
      }
      return handler;
    },
    HttpResponseStream,
  };
}

function streamingMode(handler) {
  const mode = handler[HANDLER_STREAMING];
  if (mode === undefined || mode === null || mode === false) return null;
  if (mode === STREAM_RESPONSE) return STREAM_RESPONSE;
  throw new MalformedStreamingHandler('Only response streaming is supported.');
}

// ---------------------------------------------------------------------------
// Context object
// ---------------------------------------------------------------------------

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

/** Fields of the context object that come from the environment and the /next headers. */
function invocationData(headers) {
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  return {
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    // A string, as Lambda gives it.
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: parseJsonHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
    identity: parseJsonHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    getRemainingTimeInMillis() {
      return deadline - Date.now();
    },
  };
}

function parseEvent(body) {
  const text = body.toString('utf8');
  // Lambda hands an empty invoke payload to the function as an empty object.
  return text.trim() === '' ? {} : JSON.parse(text);
}

function serializeResult(result) {
  try {
    return JSON.stringify(result === undefined ? null : result);
  } catch (_) {
    throw new Error('Unable to stringify response body');
  }
}

function isPromise(value) {
  return value != null && typeof value.then === 'function';
}

// ---------------------------------------------------------------------------
// The invocation loop
// ---------------------------------------------------------------------------

const TRACE_VAR = '_X_AMZN_TRACE_ID';

/**
 * Shows the invocation's trace id as process.env._X_AMZN_TRACE_ID without writing it to the
 * process's environment. Assigning to process.env calls setenv(3), and glibc keeps every
 * distinct value it was ever given: a new trace id per invocation would leak about 140 bytes
 * each time, never freed, until the environment runs out of memory. process.env becomes a
 * proxy of itself that answers for this one variable (reads, `in`, keys, assignment, delete);
 * child_process copies the env object's keys and values, so children see it too. Only
 * getenv(3) in native code does not, nor util.inspect (console.log(process.env)), which
 * shows a proxy's target.
 */
function installTraceIdVariable() {
  const real = process.env;
  let value = real[TRACE_VAR];
  if (value !== undefined) delete real[TRACE_VAR];
  const isTrace = (key) => key === TRACE_VAR;
  const proxy = new Proxy(real, {
    get(target, key) {
      return isTrace(key) ? value : Reflect.get(target, key);
    },
    set(target, key, v) {
      if (!isTrace(key)) return Reflect.set(target, key, v);
      value = String(v);
      return true;
    },
    has(target, key) {
      return isTrace(key) ? value !== undefined : Reflect.has(target, key);
    },
    deleteProperty(target, key) {
      if (!isTrace(key)) return Reflect.deleteProperty(target, key);
      value = undefined;
      return true;
    },
    ownKeys(target) {
      const keys = Reflect.ownKeys(target);
      if (value !== undefined) keys.push(TRACE_VAR);
      return keys;
    },
    getOwnPropertyDescriptor(target, key) {
      if (!isTrace(key)) return Reflect.getOwnPropertyDescriptor(target, key);
      return value === undefined
        ? undefined
        : { value, writable: true, enumerable: true, configurable: true };
    },
    defineProperty(target, key, desc) {
      if (!isTrace(key)) return Reflect.defineProperty(target, key, desc);
      value = String(desc.value);
      return true;
    },
  });
  Object.defineProperty(process, 'env', { value: proxy, writable: true, enumerable: true, configurable: true });
  return {
    set(v) {
      value = v;
    },
  };
}

class Runtime {
  constructor(api, handler) {
    this.api = api;
    this.handler = handler;
    this.isAsync = handler.constructor?.name === 'AsyncFunction';
    this.streaming = streamingMode(handler);
    const hwm = Number(handler[HANDLER_HIGHWATERMARK]);
    this.highWaterMark = Number.isFinite(hwm) && hwm > 0 ? hwm : undefined;
    // Request id of the invocation in progress; uncaught errors are reported against it.
    this.currentId = null;
    this.traceId = installTraceIdVariable();
    // Runs when the event loop has nothing left to do: this is how a callback handler
    // that keeps callbackWaitsForEmptyEventLoop = true gets its response posted.
    this.onEmptyEventLoop = () => {};
    process.on('beforeExit', () => this.onEmptyEventLoop());
  }

  scheduleNext() {
    this.onEmptyEventLoop = () => {};
    setImmediate(() => this.handleOnce().catch(fatal));
  }

  /**
   * Posts an invocation's outcome and asks for the next event in the same write (the
   * connection pipelines them); the platform answers the post first.
   */
  finish(post) {
    post.catch(fatal);
    this.onEmptyEventLoop = () => {};
    this.handleOnce().catch(fatal);
  }

  async handleOnce() {
    const { headers, body } = await this.api.next();
    const id = headers['lambda-runtime-aws-request-id'];
    if (!id) throw new Error('invocation id is missing from /next');
    this.currentId = id;
    globalThis[REQUEST_ID] = id;
    this.traceId.set(headers['lambda-runtime-trace-id'] || undefined);
    if (this.streaming) return this.invokeStreaming(id, headers, body);
    return this.invokeBuffered(id, headers, body);
  }

  /** Builds callback, context.{succeed,fail,done} and the wait-for-empty-loop switch. */
  callbackContext(id) {
    let finished = false; // only the first of callback/succeed/fail/done counts
    let completed = false; // a response or error was posted
    let waitForEmptyEventLoop = true;

    const postError = (err) => {
      completed = true;
      logError('Invoke Error', err);
      this.finish(this.api.postError(id, err));
    };
    const complete = (result) => {
      if (completed) return;
      let bodyString;
      try {
        bodyString = serializeResult(result);
      } catch (err) {
        postError(err);
        return;
      }
      completed = true;
      this.finish(this.api.postResponse(id, bodyString));
    };
    const once = (fn) => (...args) => {
      if (finished) return;
      finished = true;
      fn(...args);
    };

    const callback = once((err, result) => {
      this.onEmptyEventLoop = () => {};
      if (err !== undefined && err !== null) {
        postError(err);
      } else if (!waitForEmptyEventLoop) {
        complete(result);
      } else {
        this.onEmptyEventLoop = () => {
          this.onEmptyEventLoop = () => {};
          setImmediate(() => complete(result));
        };
      }
    });
    const done = (err, result) => {
      this.onEmptyEventLoop = () => {};
      if (err !== undefined && err !== null) postError(err);
      else complete(result);
    };
    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waitForEmptyEventLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        waitForEmptyEventLoop = value;
      },
      succeed: once((result) => done(null, result)),
      fail: once((err) => done(err === undefined || err === null ? 'handled' : err)),
      done: once(done),
    };
    const markCompleted = () => {
      finished = true;
      completed = true;
    };
    return { callback, context, markCompleted };
  }

  invokeBuffered(id, headers, body) {
    const { callback, context, markCompleted } = this.callbackContext(id);

    // Neither callback nor promise settled and nothing is left to run: a plain handler
    // is done (null result); an async one will never finish.
    this.onEmptyEventLoop = () => {
      this.onEmptyEventLoop = () => {};
      markCompleted();
      if (this.isAsync) {
        const err = new NodeJsExit(
          'The handler returned a Promise that never settled and the event loop is empty.',
        );
        logError('Invoke Error', err);
        this.finish(this.api.postError(id, err));
      } else {
        this.finish(this.api.postResponse(id, 'null'));
      }
    };

    try {
      const ctx = Object.assign(context, invocationData(headers));
      const result = this.handler(parseEvent(body), ctx, callback);
      if (isPromise(result)) {
        result.then(context.succeed, context.fail).catch(context.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  async invokeStreaming(id, headers, body) {
    const rs = this.api.responseStream(id, this.highWaterMark);
    this.onEmptyEventLoop = () => {};
    const fail = async (err) => {
      logError('Invoke Error', err);
      if (rs.started()) {
        rs.failStarted(intoError(err));
        await rs.responseDone.catch(() => {});
      } else {
        await this.api.postError(id, err);
      }
    };
    try {
      const ctx = invocationData(headers);
      const result = this.handler(parseEvent(body), rs.stream, ctx);
      if (!isPromise(result)) {
        await fail(new InvalidStreamingOperation('Streaming does not support non-async handlers.'));
      } else {
        await result;
        if (!rs.stream.writableEnded) {
          await fail(new InvalidStreamingOperation('Response stream is not finished.'));
        } else {
          await rs.responseDone;
        }
      }
    } catch (err) {
      await fail(err);
    }
    this.scheduleNext();
  }
}

function fatal(err) {
  process.stderr.write(`updraft runtime: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

// In a pre-warmed environment Node.js and this client start before any function is known,
// with an empty /var/task and a generic environment. The assignment (JSON: argv, env as
// [name, value] pairs, cwd) arrives on the descriptor named by _UPDRAFT_ASSIGNMENT_FD once
// the function's code is mounted; from then on this process is that function's runtime.
function awaitAssignment() {
  const fdVar = process.env._UPDRAFT_ASSIGNMENT_FD;
  if (fdVar === undefined) return;
  const fd = Number(fdVar);
  // Blocks until the platform has written the assignment and closed the pipe.
  const text = fs.readFileSync(fd, 'utf8');
  fs.closeSync(fd);
  const assignment = JSON.parse(text);
  // The platform started this process with a subset of the function's variables.
  delete process.env._UPDRAFT_ASSIGNMENT_FD;
  for (const [name, value] of assignment.env) process.env[name] = value;
  // The code was mounted over the directory this process started in.
  process.chdir(assignment.cwd);
}

// In a pre-warmed environment, runs once what loading a CommonJS handler and the first
// connection to the Runtime API would otherwise load and compile after the function arrived
// (most of what is left of a cold start here). Port 9 and the abstract socket below have no
// listener in the environment's network.
async function warmUp() {
  if (process.env._UPDRAFT_ASSIGNMENT_FD === undefined) return;
  try {
    require(path.join(path.dirname(new URL(import.meta.url).pathname), 'warmup.cjs'));
  } catch (_) {
    // Only a warm-up.
  }
  for (const target of [{ port: 9, host: '127.0.0.1' }, { path: '\0updraft-warm-up' }]) {
    await new Promise((resolve) => {
      const socket = net.connect(target);
      socket.on('error', resolve);
      socket.on('connect', () => {
        socket.destroy();
        resolve();
      });
    });
  }
}

async function main() {
  await warmUp();
  awaitAssignment();
  patchConsole();
  const address = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!address) {
    process.stderr.write('updraft runtime: AWS_LAMBDA_RUNTIME_API is not set\n');
    process.exit(1);
  }
  const api = new RuntimeApi(address, runtimeApiSocketPath());
  let runtime = null;

  // Errors nobody caught: before the first invocation they fail the init, afterwards
  // the invocation in progress. Either way the environment is not trusted again.
  const reportAndExit = (label, error, code) => {
    logError(label, error);
    const id = runtime && runtime.currentId;
    const post = id ? api.postError(id, error) : api.postInitError(error);
    post.then(
      () => process.exit(code),
      () => process.exit(code),
    );
  };
  process.on('uncaughtException', (error) => reportAndExit('Uncaught Exception', error, 129));
  process.on('unhandledRejection', (reason, promise) =>
    reportAndExit('Unhandled Promise Rejection', new UnhandledPromiseRejection(reason, promise), 128),
  );

  installAwsLambdaGlobal();
  let handler;
  try {
    const appRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
    handler = await loadHandler(appRoot, process.env._HANDLER || '');
    runtime = new Runtime(api, handler);
  } catch (error) {
    reportAndExit('Uncaught Exception', error, 129);
    return;
  }
  runtime.scheduleNext();
}

main().catch(fatal);
