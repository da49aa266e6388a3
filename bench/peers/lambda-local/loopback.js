// Preloaded with `node -r` so that lambda-local's watch mode, which calls `server.listen(port)` and so binds every
// interface, listens on 127.0.0.1 only: a listen given a bare port gets the loopback host added.
"use strict";
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" && (args.length === 1 || typeof args[1] !== "string")) {
    args.splice(1, 0, "127.0.0.1");
  } else if (args[0] && typeof args[0] === "object" && !args[0].host && !args[0].path) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  }
  return listen.apply(this, args);
};
