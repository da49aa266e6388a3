// Loaded once by a pre-warmed Node.js environment before its function arrives, so that the
// CommonJS loader has compiled a module before it loads the handler.
module.exports = {};
