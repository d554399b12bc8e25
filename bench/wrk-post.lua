-- wrk script for the benchmark: POSTs BENCH_BODY with BENCH_HEADERS (JSON-free "k: v" lines
-- separated by "\n"), optionally rotating over BENCH_PATHS ("|"-separated) for the path, and
-- prints one JSON line with throughput, latency percentiles (ms) and every kind of error.
local body = os.getenv("BENCH_BODY") or "{}"
local header_lines = os.getenv("BENCH_HEADERS") or ""
local paths_env = os.getenv("BENCH_PATHS") or ""

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
for line in string.gmatch(header_lines, "[^\n]+") do
  local k, v = string.match(line, "^([^:]+):%s*(.*)$")
  if k then wrk.headers[k] = v end
end

local paths = {}
for p in string.gmatch(paths_env, "[^|]+") do table.insert(paths, p) end

local counter = 0
local thread_id = 0
local threads = {}
function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  counter = tid or 0
  non2xx = 0
end

if #paths > 0 then
  request = function()
    counter = counter + 1
    return wrk.format(nil, paths[(counter % #paths) + 1])
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if non2xx <= 3 then io.stderr:write("non-2xx " .. status .. ": " .. string.sub(body or "", 1, 300) .. "\n") end
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + (t:get("non2xx") or 0) end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"mean_ms":%.3f,"max_ms":%.3f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"non2xx":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.mean / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout, bad))
end
