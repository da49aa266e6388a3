# workerd peer of Updraft's benchmark: one ES-module worker on one HTTP socket. bench/peers.py overrides the
# socket's address with `--socket-addr http=127.0.0.1:<port>`; the address below is only the default.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .hello) ],
  sockets = [ (name = "http", address = "127.0.0.1:8080", http = (), service = "main") ],
);

const hello :Workerd.Worker = (
  modules = [ (name = "worker", esModule = embed "worker.js") ],
  compatibilityDate = "2024-09-23",
);
