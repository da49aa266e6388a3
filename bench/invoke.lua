-- wrk script for Updraft's benchmark: sends one pre-signed Lambda Invoke request over and over.
--
-- The request comes from the file named by UPDRAFT_BENCH_REQUEST (written by bench.py):
--   line 1:           METHOD PATH
--   following lines:  Header-Name: value        (SigV4 headers computed once for this exact body)
--   an empty line, then the body, byte for byte.
-- A SigV4 signature stays valid for 15 minutes, which covers a run.

local file = os.getenv("UPDRAFT_BENCH_REQUEST")
if not file then
  error("UPDRAFT_BENCH_REQUEST is not set")
end
local f = assert(io.open(file, "rb"))
local text = f:read("*a")
f:close()

local head_end = assert(text:find("\n\n", 1, true), "no empty line after the headers")
local head = text:sub(1, head_end - 1)
local body = text:sub(head_end + 2)

local method, path
local headers = {}
for line in head:gmatch("[^\n]+") do
  if not method then
    method, path = line:match("^(%S+) (%S+)$")
    assert(method, "first line must be METHOD PATH")
  else
    local name, value = line:match("^([^:]+): (.*)$")
    assert(name, "bad header line: " .. line)
    headers[name] = value
  end
end
headers["Content-Length"] = tostring(#body)

local req = wrk.format(method, path, headers, body)

request = function()
  return req
end
