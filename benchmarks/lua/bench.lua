-- wrk script of benchmarks/harness.py (wrk 4.x with LuaJIT, as Debian ships it).
--
-- Environment (set by the harness):
--   BENCH_RATE     total offered rate in requests/s; absent or 0 = saturate (closed loop)
--   BENCH_THREADS  wrk threads (-t), to split BENCH_RATE between them
--   BENCH_TOKENS   file with one Authorization header value per line; every request takes the
--                  next one (distinct credentials, e.g. for a cold decision cache)
--   BENCH_METHOD   request method (default GET)
--   BENCH_BODY     file whose content is the request body
--
-- done() prints one line `BENCH_RESULT {json}` that the harness reads: request count, duration,
-- error counts and latency percentiles in microseconds.

local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
local threads = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
local tokens_file = os.getenv("BENCH_TOKENS")
local method = os.getenv("BENCH_METHOD")
local body_file = os.getenv("BENCH_BODY")

if method and method ~= "" then wrk.method = method end
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
end

if tokens_file and tokens_file ~= "" then
  local tokens = {}
  for line in io.lines(tokens_file) do
    if line ~= "" then tokens[#tokens + 1] = line end
  end
  local count = #tokens
  local next_token = 0

  -- Defined only when needed: a Lua request() makes wrk build every request in Lua.
  function request()
    next_token = next_token % count + 1
    return wrk.format(nil, nil, { ["Authorization"] = tokens[next_token] })
  end
end

if rate > 0 then
  -- Pacing: each thread hands out send slots 1/(rate/threads) apart, shared by its connections.
  -- wrk waits delay() milliseconds (an integer) after a response before the connection's next
  -- request; a slot that is already past is taken at once and the debt is not carried over, so
  -- a server that cannot keep up shows as achieved rate < offered rate.
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
  ]]
  local ts = ffi.new("bench_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval = 1000 * threads / rate
  local next_slot = 0

  function delay()
    local now = now_ms()
    local slot = next_slot
    if slot < now then slot = now end
    next_slot = slot + interval
    return slot - now
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
