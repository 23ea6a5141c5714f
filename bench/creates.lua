-- wrk script: POST exportJobs creates and count the status of every response.
-- Script argument (after --): "unique" sends a fresh explorerViewId per request (the 201
-- path); "same" sends one fixed pair (after the first 201, the 409 path).
-- GET modes: "list" GETs the URL as given; "ids:N" GETs URL/job-<k> with k drawn at random
-- from 1..N on every request (job ids written by bench/proxy.py's generated cassettes).
-- A second argument, an origin such as "http://127.0.0.1:8080", sends every request in
-- absolute form ("GET http://127.0.0.1:8080/beta/... HTTP/1.1", Host: that origin) to the
-- URL wrk was given, as a client configured with HTTP_PROXY does: regular proxy mode.
-- done() prints one BENCH_RESULT JSON line that bench/common.py parses.

local org = "9ab0fcab-c1d4-4b26-963b-a3c33155f853"
local fixed_view = "7a6d1c3e-0b5f-4e2a-8c9d-1f2e3a4b5c6d"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "unique"
  statuses = {}
  counter = 0
  -- A random prefix per thread plus a counter: unique within and across threads.
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  prefix = string.format("%08x-%04x-4%03x", math.random(0, 0x7fffffff),
                         math.random(0, 0xffff), math.random(0, 0xfff))
  wrk.headers["Authorization"] = "Bearer bench-opaque-token"
  local origin = args[2]
  if origin and origin ~= "" then
    wrk.headers["Host"] = string.match(origin, "^https?://([^/]+)$")
    if not wrk.headers["Host"] then
      error("creates.lua: the origin must look like http://host:port, got " .. origin)
    end
    wrk.path = origin .. wrk.path
  end
  ids = tonumber(string.match(mode, "^ids:(%d+)$") or "")
  if mode == "list" or ids then
    wrk.method = "GET"
    return
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  if ids then
    return wrk.format(nil, string.format("%s/job-%d", wrk.path, math.random(1, ids)))
  end
  if mode == "list" then
    return wrk.format(nil, nil, nil, nil)
  end
  local view = fixed_view
  if mode == "unique" then
    counter = counter + 1
    view = string.format("%s-8000-%012x", prefix, counter)
  end
  return wrk.format(nil, nil, nil,
    '{"goalsOrganizationId":"' .. org .. '","explorerViewId":"' .. view .. '"}')
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"statuses":{%s}}\n',
    summary.requests, summary.duration,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(90)),
    math.floor(latency:percentile(99)), math.floor(latency.max),
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ",")))
end
